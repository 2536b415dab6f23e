"""The measured methods: what each one does, and so what its time means.

Every method starts from the Parquet path and ends with its metric values in
driver memory; everything in between is timed. The Spark methods include
``spark.read.parquet(path)`` (file listing, footer read for the schema) and run
on one SparkSession, warmed up before the first measurement. :data:`METHODS`
lists them in the order of the table, each with ``what``: the sentence the
report prints about what is timed.

The floors (``floor``, ``floor_multilabel``) are the cost of just reading and
counting: pyarrow + numpy in one process, no Spark, no validity checks. A method
that cannot run here (no multi-label dataset, scikit-learn missing) reads "not
available" in the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow.parquet as pq

from tally.bench.data import CLASSES, Dataset
from tally.bench.exact import with_ctr64
from tally.kernels.buckets import bucket_of
from tally.metrics.binary import roc_auc
from tally.plan import ALL_ROWS, CountPlan

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

#: Buckets of the benchmark's histograms (the job's default).
BUCKETS = 1 << 16
#: Buckets of the finer ``ctr_score`` run.
FINE_BUCKETS = 1 << 20
THRESHOLDS = (0.5,)
#: Methods that hold every row at once (a sort, or ``toPandas``) run up to this many rows.
SLOW_LIMIT = 20_000_000
BATCH_ROWS = 1 << 20

#: A method's result: metric name -> value (None where undefined).
Metrics = dict[str, float | None]


class UnavailableError(Exception):
    """The method cannot run here (a missing module or package); the message says why."""


@dataclass(frozen=True)
class Context:
    """What the methods run on."""

    binary: Dataset
    multilabel: Dataset | None
    spark: SparkSession | None = None
    buckets: int = BUCKETS

    def session(self) -> SparkSession:
        if self.spark is None:
            raise RuntimeError("this method needs a SparkSession")
        return self.spark


@dataclass(frozen=True)
class Method:
    """One row of the benchmark table."""

    key: str
    label: str
    dataset: str  # "binary" or "multilabel"
    baseline: str  # the floor its CPU is compared with
    spark: bool
    run: Callable[[Context], Metrics]
    what: str  # what is timed, for the report
    limited: bool = False  # skipped above SLOW_LIMIT rows (holds every row at once)
    repeats: int | None = None  # overrides the run's repeats
    prepare: Callable[[Context], object] | None = None  # untimed, before the Spark methods


# --- the floor -------------------------------------------------------------------------------


def _auc_metrics(pos: np.ndarray, neg: np.ndarray, suffix: str = "score") -> Metrics:
    auc, bound = roc_auc(pos, neg)
    return {f"roc_auc[{suffix}]": auc.value, f"roc_auc_error_bound[{suffix}]": bound.value}


def floor_binary(ctx: Context) -> Metrics:
    """Read ``label, score`` with pyarrow, bucket, ``bincount``; ROC AUC from the histogram."""
    b = ctx.buckets
    counts = np.zeros(2 * b, np.int64)
    rows = 0
    for path in ctx.binary.files:
        for batch in pq.ParquetFile(path).iter_batches(BATCH_ROWS, columns=["label", "score"]):
            label = batch.column(0).to_numpy()
            cell = bucket_of(batch.column(1).to_numpy(), b) * 2 + label
            counts += np.bincount(cell, minlength=2 * b)
            rows += batch.num_rows
    return {"rows": float(rows), **_auc_metrics(counts[1::2], counts[0::2])}


def floor_multilabel(ctx: Context) -> Metrics:
    """The floor of the multi-label dataset: per-class histograms of the flattened arrays."""
    if ctx.multilabel is None:
        raise UnavailableError("no multi-label dataset")
    b, k = ctx.buckets, CLASSES
    counts = np.zeros(2 * k * b, np.int64)
    rows = 0
    for path in ctx.multilabel.files:
        for batch in pq.ParquetFile(path).iter_batches(
            BATCH_ROWS // k, columns=["labels", "scores"]
        ):
            labels = batch.column(0).flatten().to_numpy()
            scores = batch.column(1).flatten().to_numpy()
            if labels.shape[0] != batch.num_rows * k or scores.shape != labels.shape:
                raise ValueError(f"{path}: rows without exactly {k} labels and scores")
            klass = np.tile(np.arange(k, dtype=np.int64), batch.num_rows)
            cell = (klass * b + bucket_of(scores, b)) * 2 + labels
            counts += np.bincount(cell, minlength=2 * k * b)
            rows += batch.num_rows
    table = counts.reshape(k, b, 2)
    aucs = [roc_auc(table[c, :, 1], table[c, :, 0])[0].value for c in range(k)]
    defined = [a for a in aucs if a is not None]
    return {"rows": float(rows), "macro_roc_auc": float(np.mean(defined)) if defined else None}


# --- Tally on Spark --------------------------------------------------------------------------


def _tally_binary(
    ctx: Context,
    scores: tuple[str, ...] = ("score",),
    slices: tuple[tuple[str, ...], ...] = (),
    buckets: int | None = None,
    reader: str = "auto",
) -> Metrics:
    from tally.metrics.binary import binary_metrics
    from tally.spark.count import count_tables

    plan = CountPlan(
        label="label",
        scores=scores,
        buckets=buckets or ctx.buckets,
        thresholds=THRESHOLDS,
        slices=slices,
    )
    df = ctx.session().read.parquet(str(ctx.binary.path))
    tables = count_tables(df, plan, _reader(ctx, df, plan, ctx.binary.path, reader))
    try:  # as `tally evaluate` counts (minus writing the tables)
        groups = tables.groups(plan)
    finally:
        tables.release()
    metrics = {key: binary_metrics(counts) for key, counts in groups.items()}
    out: Metrics = {
        "rows": float(groups[(scores[0], ALL_ROWS)].count),
        "groups": float(len(groups)),
    }
    for score in scores:
        for m in metrics[(score, ALL_ROWS)]:
            if m.metric in ("roc_auc", "roc_auc_error_bound", "pr_auc"):
                out[f"{m.metric}[{score}]"] = m.value
    return out


def _reader(ctx: Context, df: object, plan: object, path: object, reader: str) -> object:
    """The reader ``tally evaluate`` picks for ``input: {path: ..., reader: ...}``."""
    from tally.config import InputConfig
    from tally.spark.count import choose_reader

    source = InputConfig(path=str(path), reader=reader)
    return choose_reader(ctx.session(), df, plan, source)  # type: ignore[arg-type]


def tally_binary(ctx: Context) -> Metrics:
    return _tally_binary(ctx)


def tally_spark_reader(ctx: Context) -> Metrics:
    return _tally_binary(ctx, reader="spark")


def tally_slices(ctx: Context) -> Metrics:
    return _tally_binary(ctx, slices=(("country",),))


def tally_two_scores(ctx: Context) -> Metrics:
    return _tally_binary(ctx, scores=("score", "ctr_score"))


def tally_ctr_fine(ctx: Context) -> Metrics:
    return _tally_binary(ctx, scores=("ctr_score",), buckets=FINE_BUCKETS)


def _ctr_counts(ctx: Context, exact: bool = False, sort: bool = True) -> tuple:
    """``ctr_score`` alone counted as ``tally evaluate`` counts it (with ``exact``, as
    under ``metrics.auc: exact``: the arrow reader ships the rows as it counts, to
    reducers that sort them, or only count them without ``sort``): the DataFrame, the
    plan, the reader and the counts of the ALL slice."""
    from tally.metrics.exact import RefineOptions
    from tally.spark.count import count_tables
    from tally.spark.readers.arrow.refine import shipping_reader

    plan = CountPlan(
        label="label", scores=("ctr_score",), buckets=ctx.buckets, thresholds=THRESHOLDS
    )
    df = ctx.session().read.parquet(str(ctx.binary.path))
    reader = _reader(ctx, df, plan, ctx.binary.path, "auto")
    if exact:
        reader = shipping_reader(reader, plan, RefineOptions().part_rows, sort)
    tables = count_tables(df, plan, reader)  # type: ignore[arg-type]
    try:
        counts = tables.groups(plan)[("ctr_score", ALL_ROWS)]
    finally:
        tables.release()
    return df, plan, reader, counts


def _tally_ctr(ctx: Context, exact: bool) -> Metrics:
    """``ctr_score`` alone, as ``tally evaluate`` counts it; with ``exact``, then the
    passes of ``metrics.auc: exact`` (``passes``: reads of the input, the count included)."""
    from tally.metrics.binary import binary_metrics
    from tally.spark.refine import exact_auc_metrics, refine_histogram

    df, plan, reader, counts = _ctr_counts(ctx, exact)
    values = binary_metrics(counts)
    out: Metrics = {"rows": float(counts.count), "passes": 1.0}
    if exact:
        flat = refine_histogram(df, plan, "ctr_score", counts, reader=reader)  # type: ignore[arg-type]
        out["passes"] = float(flat.passes)
        values = exact_auc_metrics(flat)
    for m in values:
        if m.metric in ("roc_auc", "roc_auc_error_bound", "pr_auc"):
            out[f"{m.metric}[ctr_score]"] = m.value
    return out


def tally_ctr(ctx: Context) -> Metrics:
    return _tally_ctr(ctx, exact=False)


def tally_ctr_exact(ctx: Context) -> Metrics:
    """``ctr_score`` with ``metrics.auc: exact``: pass one, then the refinement passes."""
    return _tally_ctr(ctx, exact=True)


def tally_ctr64(ctx: Context) -> Metrics:
    return _tally_ctr(with_ctr64(ctx), exact=False)


def tally_ctr64_exact(ctx: Context) -> Metrics:
    return _tally_ctr(with_ctr64(ctx), exact=True)


class _ShuffledError(Exception):
    """Ends :func:`tally_ctr_exact_floor` after its shuffle (args: rows shuffled)."""


def _rows_in(items: Iterator[tuple[int, tuple]]) -> Iterator[int]:
    yield sum(chunk[0].shape[0] for _, chunk in items)


def tally_ctr_exact_floor(ctx: Context) -> Metrics:
    """The lower bound of exact mode on ``ctr_score``: the count pass shipping every
    valid row as exact mode's does (the same transport: files in local mode, else
    PySpark's shuffle), its reducers only reading and counting them (no sort, no
    metrics). Without the arrow reader (no rows shipped): the count, then one read and
    one shuffle of exactly the rows the sort pass sorts."""
    from tally.metrics.exact import RefineOptions, refine
    from tally.spark.refine import narrow_scores, part_key

    df, plan, reader, counts = _ctr_counts(ctx, exact=True, sort=False)
    session = ctx.session()
    shipped = reader.take_shipped("ctr_score")
    if shipped is not None:
        return {"rows": float(counts.count), "rows_shuffled": float(shipped.rows)}

    def shuffle_only(steps, layout, job):
        rows = reader.sort_rows(df, plan, "ctr_score", steps, layout)  # type: ignore[attr-defined]
        by_part = rows.partitionBy(layout.parts, part_key)
        raise _ShuffledError(sum(by_part.mapPartitions(_rows_in).collect()))

    options = RefineOptions(parallelism=session.sparkContext.defaultParallelism)
    try:
        refine(counts, None, shuffle_only, options, narrow=narrow_scores(df, plan, "ctr_score"))  # type: ignore[arg-type]
        shuffled = 0
    except _ShuffledError as done:
        shuffled = done.args[0]
    return {"rows": float(counts.count), "rows_shuffled": float(shuffled)}


def tally_ctr64_exact_floor(ctx: Context) -> Metrics:
    """:func:`tally_ctr_exact_floor` on the float64 copy of ``ctr_score``."""
    return tally_ctr_exact_floor(with_ctr64(ctx))


def tally_multilabel(ctx: Context, reader: str = "auto") -> Metrics:
    """Tally multi-label on Spark, as ``tally evaluate`` counts (minus writing the tables).

    Raises :class:`UnavailableError` without a multi-label dataset.
    """
    if ctx.multilabel is None:
        raise UnavailableError("no multi-label dataset")
    from tally.metrics.multilabel import multilabel_metrics
    from tally.spark.count import count_tables

    plan = CountPlan(
        label="labels",
        scores=("scores",),
        buckets=ctx.buckets,
        thresholds=THRESHOLDS,
        task="multilabel",
        classes=tuple(f"c{k}" for k in range(CLASSES)),
    )
    df = ctx.session().read.parquet(str(ctx.multilabel.path))
    tables = count_tables(df, plan, _reader(ctx, df, plan, ctx.multilabel.path, reader))
    try:
        groups = tables.groups(plan)
    finally:
        tables.release()
    counts = groups[("scores", ALL_ROWS)]
    values = {m.metric: m.value for m in multilabel_metrics(counts) if m.class_ is None}
    return {"rows": float(counts.rows), "macro_roc_auc": values.get("macro_roc_auc")}


def tally_multilabel_spark_reader(ctx: Context) -> Metrics:
    return tally_multilabel(ctx, reader="spark")


# --- Spark ML and scikit-learn ----------------------------------------------------------------


def spark_ml(ctx: Context) -> Metrics:
    """``BinaryClassificationEvaluator`` (areaUnderROC) on the same rows."""
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.sql import functions as F

    df = (
        ctx.session()
        .read.parquet(str(ctx.binary.path))
        .select(
            F.col("label").cast("double").alias("label"),
            F.col("score").cast("double").alias("score"),
        )
    )
    evaluator = BinaryClassificationEvaluator(
        rawPredictionCol="score", labelCol="label", metricName="areaUnderROC"
    )
    return {"roc_auc[score]": float(evaluator.evaluate(df))}


def _roc_auc_score() -> Callable[..., float]:
    try:
        from sklearn.metrics import roc_auc_score
    except ImportError as exc:
        raise UnavailableError("scikit-learn is not installed (pip install -e '.[test]')") from exc
    return roc_auc_score


def sklearn(ctx: Context) -> Metrics:
    """``toPandas()`` of ``label, score`` (Arrow), then ``roc_auc_score``."""
    roc_auc_score = _roc_auc_score()
    frame: pd.DataFrame = (
        ctx.session().read.parquet(str(ctx.binary.path)).select("label", "score").toPandas()
    )
    auc = roc_auc_score(frame["label"].to_numpy(), frame["score"].to_numpy())
    return {"rows": float(len(frame)), "roc_auc[score]": float(auc)}


def exact_auc(ctx: Context, score: str) -> float:
    """Exact ROC AUC of one column (``toPandas`` + ``roc_auc_score``); not timed."""
    roc_auc_score = _roc_auc_score()
    frame: pd.DataFrame = (
        ctx.session().read.parquet(str(ctx.binary.path)).select("label", score).toPandas()
    )
    return float(roc_auc_score(frame["label"].to_numpy(), frame[score].to_numpy()))


#: Every method, in the order of the table. Floors run first (before Spark starts).
METHODS: tuple[Method, ...] = (
    Method(
        "floor",
        "floor: pyarrow + numpy, one process",
        "binary",
        "floor",
        spark=False,
        run=floor_binary,
        what="pyarrow `iter_batches` of `label, score` (2^20 rows a batch), "
        "`tally.counts.bucket_of` (2^16 buckets), `np.bincount(2·bucket + label)`, ROC AUC "
        "from the histogram. No Spark, no validity checks (the data has no invalid rows).",
    ),
    Method(
        "tally",
        "Tally binary",
        "binary",
        "floor",
        spark=True,
        run=tally_binary,
        what="`spark.read.parquet` + `count_tables` with the reader `tally evaluate` picks "
        "(`input.reader: auto`, here the arrow reader: pyarrow + numpy in the Python workers, "
        "per-task dense tables added by `treeReduce`, one table to the driver) + decode + "
        "`binary_metrics` (every binary metric), 2^16 buckets, threshold 0.5: `tally "
        "evaluate` minus writing the results and counts tables.",
    ),
    Method(
        "tally_spark_reader",
        "Tally binary, input.reader: spark",
        "binary",
        "floor",
        spark=True,
        run=tally_spark_reader,
        what="the same with `input.reader: spark`: Spark's Parquet reader and one Spark SQL "
        "aggregation, persisted, collected through Arrow (the path for non-Parquet inputs "
        "and remote files under `auto`).",
    ),
    Method(
        "tally_slices",
        "Tally binary + slice [country]",
        "binary",
        "floor",
        spark=True,
        run=tally_slices,
        what="the same with `slices: [[country]]`: every row is counted for ALL and for its "
        "country (51 groups, metrics for each); the arrow reader makes a first pass over the "
        "`country` column (rows per value, for `max_slices_per_spec`).",
    ),
    Method(
        "tally_two_scores",
        "Tally binary, score + ctr_score",
        "binary",
        "floor",
        spark=True,
        run=tally_two_scores,
        what="the same with two score columns, `score` and `ctr_score`, in one pass "
        "(rows counted once, each row counted for both scores).",
    ),
    Method(
        "tally_ctr_fine",
        "Tally binary, ctr_score, 2^20 buckets",
        "binary",
        "floor",
        spark=True,
        run=tally_ctr_fine,
        repeats=1,
        what="`ctr_score` alone at 2^20 buckets, run once: how far a finer histogram "
        "tightens the AUC bound of a peaked score.",
    ),
    Method(
        "tally_ctr",
        "Tally binary, ctr_score (float32)",
        "binary",
        "floor",
        spark=True,
        run=tally_ctr,
        what="`ctr_score` (float32) alone at 2^16 buckets, bucketed: the baseline of exact mode.",
    ),
    Method(
        "tally_ctr_exact",
        "Tally binary, ctr_score (float32), metrics.auc: exact",
        "binary",
        "floor",
        spark=True,
        run=tally_ctr_exact,
        what="the same with `metrics.auc: exact`: the count pass also ships every valid row "
        "to reducers holding whole buckets, which order the rows of the buckets that carry "
        "error (one read): the cost of exact over bucketed.",
    ),
    Method(
        "tally_ctr_exact_floor",
        "lower bound of exact mode, ctr_score (float32)",
        "binary",
        "floor",
        spark=True,
        run=tally_ctr_exact_floor,
        what="the count pass shipping every valid row to the reducers as exact mode's does "
        "(one read; in local mode through files, else one shuffle), the reducers only "
        "reading and counting them (no sort, no metrics): what exact mode pays before its "
        "reducers order the rows.",
    ),
    Method(
        "tally_ctr64",
        "Tally binary, ctr_score as float64",
        "binary",
        "floor",
        spark=True,
        run=tally_ctr64,
        prepare=with_ctr64,
        what="`ctr_score` widened to float64 (a copy of `label, ctr_score`, "
        "`tally.bench.exact`), bucketed.",
    ),
    Method(
        "tally_ctr64_exact",
        "Tally binary, ctr_score as float64, metrics.auc: exact",
        "binary",
        "floor",
        spark=True,
        run=tally_ctr64_exact,
        prepare=with_ctr64,
        what="the same with `metrics.auc: exact`: 8-byte sort keys instead of 4.",
    ),
    Method(
        "tally_ctr64_exact_floor",
        "lower bound of exact mode, ctr_score as float64",
        "binary",
        "floor",
        spark=True,
        run=tally_ctr64_exact_floor,
        prepare=with_ctr64,
        what="`tally_ctr_exact_floor` on the float64 copy: the rows shipped as 8-byte keys.",
    ),
    Method(
        "spark_ml",
        "Spark ML BinaryClassificationEvaluator",
        "binary",
        "floor",
        spark=True,
        run=spark_ml,
        limited=True,
        what="`spark.read.parquet` + `BinaryClassificationEvaluator(metricName='areaUnderROC')"
        ".evaluate` on `label, score` cast to double (default `numBins=1000`): it sorts "
        "every distinct score.",
    ),
    Method(
        "sklearn",
        "scikit-learn roc_auc_score after toPandas()",
        "binary",
        "floor",
        spark=True,
        run=sklearn,
        limited=True,
        what="`spark.read.parquet(...).select('label', 'score').toPandas()` (Arrow enabled) "
        "+ `sklearn.metrics.roc_auc_score`: every row on the driver.",
    ),
    Method(
        "floor_multilabel",
        "floor, multi-label K=20: pyarrow + numpy",
        "multilabel",
        "floor_multilabel",
        spark=False,
        run=floor_multilabel,
        what="pyarrow `iter_batches` of `labels, scores` (list columns, flattened), "
        "`bucket_of`, `np.bincount(2·(k·B + bucket) + label)`, macro ROC AUC.",
    ),
    Method(
        "tally_multilabel",
        "Tally multi-label K=20",
        "multilabel",
        "floor_multilabel",
        spark=True,
        run=tally_multilabel,
        what="`count_tables` (reader as `tally evaluate` picks it: arrow, per-task dense "
        "tables added by `treeReduce`) + decode + `multilabel_metrics` with "
        "`task: multilabel`, 20 classes, 2^16 buckets, threshold 0.5 (per-class histograms, "
        "tp/fp/fn, exact-match rows).",
    ),
    Method(
        "tally_multilabel_spark_reader",
        "Tally multi-label K=20, input.reader: spark",
        "multilabel",
        "floor_multilabel",
        spark=True,
        run=tally_multilabel_spark_reader,
        what="the same with `input.reader: spark`: Spark's reader hands the rows to "
        "`mapInArrow` (the JVM decodes the arrays and writes them to Arrow), Spark SQL adds "
        "up the per-task cells.",
    ),
)
METHOD_KEYS = tuple(m.key for m in METHODS)
