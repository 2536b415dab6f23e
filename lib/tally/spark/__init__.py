"""The Spark side of Tally: reading inputs, counting with a reader, writing tables.

Every module here may import pyspark; the numpy core (:mod:`tally.plan`,
:mod:`tally.kernels`, :mod:`tally.tasks`, :mod:`tally.counts`,
:mod:`tally.counts_multi`, :mod:`tally.metrics`) never does, which
``tests/test_architecture.py`` checks. Outside this package, the modules that take or
give Spark DataFrames import pyspark too: :mod:`tally.job` (the ``tally evaluate``
run), :mod:`tally.api` (``tally.evaluate``), :mod:`tally.report` (reads the tables),
and :mod:`tally.cli` and :mod:`tally.bench`, which import Spark code only in the
commands that start Spark.
"""
