"""Multi-label cells of rows read by Spark: ``mapInArrow`` + numpy, added up by Spark SQL.

A multi-label row holds K labels and K scores, which Spark SQL reaches only through
higher-order functions that build one struct per element. Instead Spark hands each
partition's rows to Python as Arrow batches (:mod:`tally.kernels.batches`: the arrays
stay columnar) and :func:`tally.kernels.multilabel.count_partition` counts them; Spark
SQL then adds the per-task tables up by key, as for every other count table.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from tally.kernels import multilabel
from tally.kernels.batches import WEIGHT, BatchColumns
from tally.kernels.cells import MultilabelLayout
from tally.plan import SUM_COLUMNS, CountPlan, cell_keys_schema
from tally.spark.cells import value_keys
from tally.spark.names import column

#: The sums the multi-label kernels give; the others are 0.
MULTILABEL_SUMS = ("n", "w", "wy")


def multilabel_cells(
    df: DataFrame, plan: CountPlan, dense_max_cells: int = multilabel.DENSE_MAX_CELLS
) -> tuple[DataFrame, int]:
    """The aggregated multi-label cells of ``df`` and the slice width, from one
    ``mapInArrow`` pass and one aggregation of its output.

    ``dense_max_cells``: the largest per-task dense table of the ALL slice (see
    :data:`~tally.kernels.multilabel.DENSE_MAX_CELLS`); 0 counts ALL per batch, as
    slices are.
    """
    width = plan.slice_width
    batch = BatchColumns.of(plan, arrays=True)
    inputs = []
    for name, source in batch.sources.items():
        value = column(source)
        if name == WEIGHT:
            value = value.cast("double")
        elif name in batch.slice_sources:
            value = value.cast("string")
        inputs.append(value.alias(name))
    count = partial(
        _count_checked,
        batch=batch,
        scores=len(plan.scores),
        layout=MultilabelLayout.of(plan),
        width=width,
        dense_max_cells=dense_max_cells,
    )
    counted = df.select(*inputs).mapInArrow(count, cell_keys_schema(width, MULTILABEL_SUMS))
    keys = ["score_index", "spec", *value_keys(width), "cell"]
    sums = [F.sum(c).alias(c) for c in MULTILABEL_SUMS]
    zeros = [F.lit(0.0).alias(c) for c in SUM_COLUMNS if c not in MULTILABEL_SUMS]
    return counted.groupBy(*keys).agg(*sums, *zeros), width


def _count_checked(
    batches: Iterator[pa.RecordBatch], batch: BatchColumns, **options: object
) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function: the first batch checked against ``batch``, then
    :func:`~tally.kernels.multilabel.count_partition`."""

    def checked() -> Iterator[pa.RecordBatch]:
        first = True
        for b in batches:
            if first:
                batch.check(b.schema)
                first = False
            yield b

    spec_columns = [list(spec) for spec in batch.spec_columns]
    yield from multilabel.count_partition(checked(), spec_columns=spec_columns, **options)
