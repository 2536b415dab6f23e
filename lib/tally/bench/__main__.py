"""``python -m tally.bench``: the same as ``jobs/bench.py`` (the memory mode starts its
fresh per-size processes this way)."""

import sys

from tally.bench.run import main

sys.exit(main())
