"""spark-submit entry point: evaluate one config for one run date.

    spark-submit jobs/evaluate.py --config conf/demo.yaml --run-date 2026-11-22 [--set k=v]

Thin on purpose: arguments go to ``tally evaluate``; all logic lives in ``lib/tally``.
Exits with its codes (docs/operations.md; 6: a check failed, docs/checks.md).
"""

import sys

from tally.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
