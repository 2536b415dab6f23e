"""Multi-label rows read by Spark and counted with ``mapInArrow`` + numpy.

Spark hands each partition's rows to Python as Arrow batches
(:mod:`tally.kernels.batches`: the arrays stay columnar) and
:func:`tally.kernels.multilabel.count_partition` counts them; Spark SQL then adds
the per-task tables up by key, as for every other count table.
"""

from __future__ import annotations

from functools import partial

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from tally.kernels.batches import BatchColumns
from tally.kernels.cells import MultilabelLayout
from tally.kernels.multilabel import DENSE_MAX_CELLS, count_partition
from tally.plan import SUM_COLUMNS, CountPlan, cell_keys_schema
from tally.spark.names import column

#: The sums the multi-label kernels give; the others are 0.
MULTILABEL_SUMS = ("n", "w", "wy")


def count_multilabel(
    df: DataFrame, plan: CountPlan, dense_max_cells: int = DENSE_MAX_CELLS
) -> tuple[DataFrame, int]:
    """The aggregated multi-label cells of ``df`` (keys score_index, spec, v0…, cell) and
    the slice width, from one ``mapInArrow`` pass and one aggregation of its output.

    ``dense_max_cells``: the largest per-task dense table of the ALL slice (see
    :data:`~tally.kernels.multilabel.DENSE_MAX_CELLS`); 0 counts ALL per batch, as
    slices are.
    """
    width = plan.slice_width
    batch = BatchColumns.of(plan, arrays=True)
    inputs = []
    for name, source in batch.sources.items():
        value = column(source)
        if name == "w":
            value = value.cast("double")
        elif name.startswith("c"):
            value = value.cast("string")
        inputs.append(value.alias(name))
    count = partial(
        count_partition,
        scores=len(plan.scores),
        spec_columns=[list(spec) for spec in batch.spec_columns],
        layout=MultilabelLayout.of(plan),
        width=width,
        dense_max_cells=dense_max_cells,
    )
    counted = df.select(*inputs).mapInArrow(count, cell_keys_schema(width, MULTILABEL_SUMS))
    keys = ["score_index", "spec", *(f"v{j}" for j in range(width)), "cell"]
    sums = [F.sum(c).alias(c) for c in MULTILABEL_SUMS]
    zeros = [F.lit(0.0).alias(c) for c in SUM_COLUMNS if c not in MULTILABEL_SUMS]
    return counted.groupBy(*keys).agg(*sums, *zeros), width
