"""``make bench``: Tally against the single-process floor, Spark ML and scikit-learn.

Issue 5: race the single-process floor, beat Spark ML by two orders of magnitude,
prove flat memory. Modules:

* :mod:`tally.bench.data` — deterministic datasets, chunked, cached under ``data/bench``;
* :mod:`tally.bench.methods` — the measured methods and what each one times;
* :mod:`tally.bench.probe` — wall, CPU (Python + JVM) and peak RSS from ``/proc``;
* :mod:`tally.bench.run` — the throughput run, the memory mode, the command line;
* :mod:`tally.bench.report` — the console table, ``docs/benchmarks.{md,json}``.

Entry point: ``jobs/bench.py`` (``make bench``, ``make bench-memory``).
"""
