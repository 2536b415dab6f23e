"""Benchmark entry point: ``make bench`` / ``make bench-memory`` run it with the venv's Python.

    .venv/bin/python jobs/bench.py --rows 20000000 [--repeats 3] [--note TEXT]
    .venv/bin/python jobs/bench.py --memory [--memory-rows 1000000,100000000]

Thin on purpose: all logic lives in ``lib/tally/bench`` (``--help`` lists the options).
Run it with plain Python, not ``spark-submit``: it starts its own local Spark with
the benchmark's settings (driver memory cannot change once a JVM runs).
"""

import sys

from tally.bench.run import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
