"""The readers: what reads an input's rows and counts them (:class:`~.base.Reader`).

=========  ===================================  ==================================
name       reads with                           counts tasks
=========  ===================================  ==================================
``spark``  Spark's reader (any input)           every task (Spark SQL, mapInArrow)
``arrow``  pyarrow in the Python workers        binary, multilabel, multiclass
           (Parquet files)                      (numpy kernels)
=========  ===================================  ==================================

``input.reader`` names one, or ``auto``; :func:`tally.spark.count.choose_reader` is the
one place that picks a reader for a plan and an input, and falls back to the Spark
SQL reader, saying why, where the arrow reader cannot count the plan.
"""

from __future__ import annotations

from tally.spark.readers.arrow import ArrowReader
from tally.spark.readers.base import Reader
from tally.spark.readers.sql import SQL_READER, SqlReader

__all__ = ["SQL_READER", "ArrowReader", "Reader", "SqlReader"]
