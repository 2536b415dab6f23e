"""The stored counts table: each run's count tables, so that windows add up without a rescan.

Sparse (only cells that occur), partitioned by (run_date, model) with the same
replace-on-rerun rule as the results. ``layout`` (JSON) records what the cell ids
mean — task, buckets, thresholds, weighting — so a rollup only adds days that
were counted the same way.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tally.errors import InputError
from tally.plan import COUNT_COLUMNS, COUNT_FIELDS, SUM_COLUMNS, CountPlan
from tally.spark.tables import replace_partitions

#: Spark types of the count table's DDL type names (:data:`tally.plan.COUNT_FIELDS`).
_TYPES = {"string": T.StringType(), "bigint": T.LongType(), "double": T.DoubleType()}
#: The count table's columns (keys and ``n`` never null, sums nullable), then the run keys.
COUNTS_SCHEMA = T.StructType(
    [T.StructField(name, _TYPES[kind], name in SUM_COLUMNS[1:]) for name, kind in COUNT_FIELDS]
    + [
        T.StructField("layout", T.StringType(), False),
        T.StructField("run_date", T.DateType(), False),
        T.StructField("model", T.StringType(), False),
    ]
)
PARTITION_COLUMNS = ("run_date", "model")


@dataclass(frozen=True)
class StoredLayout:
    """What the cell ids of a stored count table mean: task, buckets, thresholds, classes, …
    (the count plan without its column names), recorded with every stored day."""

    buckets: int
    thresholds: tuple[float, ...]
    weighted: bool
    task: str = "binary"
    classes: tuple[str, ...] = ()
    top_k: tuple[int, ...] = ()
    multiclass_input: str = "prediction"

    @classmethod
    def of(cls, plan: CountPlan) -> StoredLayout:
        return cls(
            buckets=plan.buckets,
            thresholds=tuple(plan.thresholds),
            weighted=plan.weight is not None,
            task=plan.task,
            classes=tuple(plan.classes),
            top_k=tuple(plan.top_k),
            multiclass_input=plan.multiclass_input,
        )

    def plan(self) -> CountPlan:
        """A plan that decodes stored cells (column names are not needed to decode)."""
        return CountPlan(
            label="",
            scores=(),
            buckets=self.buckets,
            thresholds=self.thresholds,
            weight="w" if self.weighted else None,
            task=self.task,
            classes=self.classes,
            top_k=self.top_k,
            multiclass_input=self.multiclass_input,
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "task": self.task,
                "buckets": self.buckets,
                "thresholds": list(self.thresholds),
                "weighted": self.weighted,
                "classes": list(self.classes),
                "top_k": list(self.top_k),
                "multiclass_input": self.multiclass_input,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> StoredLayout:
        raw = json.loads(text)
        return cls(
            buckets=raw["buckets"],
            thresholds=tuple(raw["thresholds"]),
            weighted=raw["weighted"],
            task=raw["task"],
            classes=tuple(raw.get("classes", ())),
            top_k=tuple(raw.get("top_k", ())),
            multiclass_input=raw.get("multiclass_input", "prediction"),
        )


def write_counts(
    spark: SparkSession,
    table: str,
    cells: DataFrame,
    layout: StoredLayout,
    run_date: dt.date,
    model: str,
    *,
    checked: bool = False,
) -> None:
    """Replace the (run_date, model) partition of the counts table with ``cells``
    (``checked``: :func:`tally.spark.tables.replace_partitions`)."""
    df = cells.select(
        *COUNT_COLUMNS,
        F.lit(layout.to_json()).alias("layout"),
        F.lit(run_date).alias("run_date"),
        F.lit(model).alias("model"),
    )
    df = df.select(*(F.col(f.name).cast(f.dataType) for f in COUNTS_SCHEMA.fields))
    role = "output.counts_table"
    replace_partitions(spark, table, df, COUNTS_SCHEMA, PARTITION_COLUMNS, role, checked=checked)


def read_window(
    spark: SparkSession, table: str, model: str, start: dt.date, end: dt.date
) -> tuple[DataFrame, StoredLayout, list[dt.date]]:
    """Stored cells of ``model`` from ``start`` to ``end`` (inclusive), added up per cell.

    Returns the summed count table, its layout and the run dates found. Fails when
    no day is stored or days were counted with different layouts.
    """
    if not spark.catalog.tableExists(table):
        raise InputError(f"counts table {table} does not exist; run `tally evaluate` first")
    stored = spark.table(table).where(
        (F.col("model") == F.lit(model)) & F.col("run_date").between(F.lit(start), F.lit(end))
    )
    found = stored.groupBy("run_date", "layout").count().orderBy("run_date").collect()
    if not found:
        raise InputError(f"no stored counts for model {model!r} from {start} to {end} in {table}")
    layouts = {r["layout"] for r in found}
    if len(layouts) > 1:
        detail = "; ".join(f"{r['run_date']}: {r['layout']}" for r in found)
        raise InputError(
            f"stored counts for model {model!r} were made with different layouts "
            f"(buckets/thresholds/weights), cannot add them: {detail}"
        )
    summed = stored.groupBy("score_column", "slice", "cell").agg(
        *(F.sum(c).alias(c) for c in SUM_COLUMNS),
    )
    return (
        summed.select(*COUNT_COLUMNS),
        StoredLayout.from_json(layouts.pop()),
        [r["run_date"] for r in found],
    )
