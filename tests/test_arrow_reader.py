"""The arrow reader (``input.reader``): Parquet read by pyarrow in the Python workers.

It must give the counts Spark's reader gives on the same files (the Spark SQL count
table is the oracle for every cell), metrics equal to scikit-learn's on the same rows,
split the files as Spark does, and fall back to Spark's reader where it cannot match it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from tally.config import ConfigError, InputConfig, parse_config
from tally.counts import bucket_of
from tally.errors import InputError
from tally.job import evaluate
from tally.kernels import binary as binary_arrow
from tally.kernels.buckets import bucket_into
from tally.kernels.cells import BinaryLayout
from tally.metrics.binary import binary_metrics
from tally.plan import ALL_ROWS, CountPlan
from tally.spark.count import arrow_reader, count_tables
from tally.spark.readers.arrow.files import Split, plan_tasks, read_split, row_groups_in

THRESHOLDS = (0.3, 0.5)
BUCKETS = 1000  # not a power of two: the edge correction of bucket_of runs


def scored_table(n: int, seed: int, invalid: bool = True) -> pa.Table:
    """label (double, nullable), score (float32), score2 (double), w, slices; with invalid rows."""
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < 0.3).astype(np.float64)
    score = np.clip(rng.normal(0.35 + 0.3 * label, 0.2), 0.0, 1.0)
    score[: n // 10] = np.round(score[: n // 10], 2)  # ties, rows on thresholds and edges
    score2 = rng.random(n)
    weight = rng.integers(1, 5, n).astype(np.float64)
    label_null = np.zeros(n, bool)
    score_null = np.zeros(n, bool)
    weight_null = np.zeros(n, bool)
    if invalid:
        label_null[7::997] = True
        score_null[11::991] = True
        score[13::983] = np.nan
        score[17::977] = np.inf
        score[19::971] = 1.5
        score2[23::967] = -0.25
        label[29::953] = 2.0
        label[31::947] = np.nan
        weight_null[37::941] = True
        weight[41::937] = -1.0
        weight[43::929] = np.inf
        weight[47::919] = np.nan
    countries = np.array(["US", "IN", "BR", "DE", "FR"])
    country = countries[rng.integers(0, 5, n)].astype(object)
    country[53::101] = None
    return pa.table(
        {
            "label": pa.array(label, pa.float64(), mask=label_null),
            "score": pa.array(score.astype(np.float32), pa.float32(), mask=score_null),
            "score2": pa.array(score2, pa.float64()),
            "w": pa.array(weight, pa.float64(), mask=weight_null),
            "country": pa.array(country, pa.string()),
            "device": pa.array(rng.integers(0, 3, n), pa.int32()),
            "flag": pa.array(rng.random(n) < 0.5, pa.bool_()),
        }
    )


def write_files(path, table: pa.Table, files: int, row_group_rows: int) -> str:
    path.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, table.num_rows, files + 1).astype(int)
    for i in range(files):
        part = table.slice(bounds[i], bounds[i + 1] - bounds[i])
        pq.write_table(part, path / f"part-{i}.parquet", row_group_size=row_group_rows)
    return str(path)


@pytest.fixture(scope="module")
def rows():
    return scored_table(30_000, seed=3)


@pytest.fixture(scope="module")
def data(tmp_path_factory, rows) -> str:
    """Three files of 500-row row groups: split into several byte ranges each below."""
    return write_files(tmp_path_factory.mktemp("direct") / "in", rows, files=3, row_group_rows=500)


def both_readers(spark, path: str, plan: CountPlan, source: InputConfig | None = None):
    """The decoded groups (and merged-slice counts) by the arrow reader and by Spark's."""
    df = spark.read.parquet(path)
    direct = arrow_reader(spark, df, plan, source or InputConfig(path=path, reader="arrow"))
    assert direct is not None
    out = []
    for chosen in (direct, None):
        tables = count_tables(df, plan, chosen)
        try:
            out.append((tables.groups(plan), tables.merged_counts()))
        finally:
            tables.release()
    return out, direct


def assert_same_groups(arrow: dict, spark: dict) -> None:
    assert arrow.keys() == spark.keys()
    for key in spark:
        assert arrow[key].same_counts(spark[key], rtol=1e-12), key


# --- splitting the files ---------------------------------------------------------------------


def test_tasks_are_the_partitions_spark_makes_of_the_same_files(spark, spark_conf, tmp_path):
    table = scored_table(40_000, seed=1, invalid=False)
    path = tmp_path / "sizes"
    path.mkdir()
    start = 0
    for i, rows in enumerate((200, 3_000, 9_000, 27_000, 800)):  # files of very different sizes
        pq.write_table(table.slice(start, rows), path / f"part-{i}.parquet", row_group_size=500)
        start += rows
    plan = CountPlan(label="label", scores=("score",), buckets=BUCKETS, thresholds=THRESHOLDS)
    for max_bytes, open_cost in (("64k", "4k"), ("200000", "16k"), ("1g", "4m")):
        with spark_conf(
            spark__sql__files__maxPartitionBytes=max_bytes,
            spark__sql__files__openCostInBytes=open_cost,
        ):
            df = spark.read.parquet(str(path))
            source = arrow_reader(spark, df, plan, InputConfig(path=str(path), reader="arrow"))
            assert len(source.tasks) == df.rdd.getNumPartitions(), (max_bytes, open_cost)
            by_file: dict[str, list[Split]] = {}
            for task in source.tasks:
                for split in task:
                    by_file.setdefault(split.path, []).append(split)
            assert len(by_file) == 5
            for splits in by_file.values():  # the ranges of a file tile it exactly
                splits.sort(key=lambda s: s.start)
                assert splits[0].start == 0
                assert all(a.start + a.length == b.start for a, b in itertools.pairwise(splits))
                assert splits[-1].start + splits[-1].length == splits[-1].file_size


def test_every_row_group_belongs_to_exactly_one_split(tmp_path):
    table = scored_table(10_000, seed=2)
    file = tmp_path / "groups.parquet"
    pq.write_table(table, file, row_group_size=700)
    size = file.stat().st_size
    metadata = pq.ParquetFile(file).metadata
    for split_bytes in (997, 5_000, 33_333, size // 2, size):  # ranges smaller than a group too
        chosen: list[int] = []
        for start in range(0, size, split_bytes):
            split = Split(str(file), start, min(split_bytes, size - start), size)
            chosen += row_groups_in(metadata, split)
        assert sorted(chosen) == list(range(metadata.num_row_groups)), split_bytes


def test_plan_tasks_packs_small_files_and_splits_large_ones():
    files = [("a", 1_000), ("b", 250_000), ("c", 2_000), ("d", 0)]
    tasks = plan_tasks(files, max_partition_bytes=100_000, open_cost=4_000, min_partitions=2)
    splits = [s for t in tasks for s in t]
    assert sorted((s.path, s.start) for s in splits if s.path == "b") == [
        ("b", 0), ("b", 100_000), ("b", 200_000)
    ]
    assert sum(s.length for s in splits) == 253_000
    # largest first, next fit: b's two full ranges alone, its last range with c, a and d
    assert [[(s.path, s.start) for s in t] for t in tasks] == [
        [("b", 0)], [("b", 100_000)], [("b", 200_000), ("c", 0), ("a", 0), ("d", 0)]
    ]


def test_a_column_missing_from_one_file_reads_as_nulls(tmp_path):
    table = scored_table(1_000, seed=4, invalid=False).drop_columns(["w"])
    file = tmp_path / "no-weight.parquet"
    pq.write_table(table, file)
    size = file.stat().st_size
    batches = list(read_split(Split(str(file), 0, size, size), {"y": "label", "w": "w"}, ()))
    weights = pa.concat_arrays([b.column("w") for b in batches])
    assert weights.type == pa.float64()
    assert weights.null_count == len(weights) == 1_000


# --- the same counts as Spark's reader -------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
def test_counts_equal_sparks_and_metrics_equal_scikit_learn(
    spark, spark_conf, data, rows, weighted
):
    plan = CountPlan(
        label="label",
        scores=("score", "score2"),
        buckets=BUCKETS,
        thresholds=THRESHOLDS,
        weight="w" if weighted else None,
    )
    with spark_conf(spark__sql__files__maxPartitionBytes="40k"):  # several ranges per file
        ((arrow, _), (spark_groups, _)), direct = both_readers(spark, data, plan)
    assert len(direct.tasks) > 3
    assert_same_groups(arrow, spark_groups)

    counts = arrow[("score", ALL_ROWS)]
    frame = rows.to_pandas()
    label, score = frame["label"].to_numpy(), frame["score"].to_numpy(np.float64)
    weight = frame["w"].to_numpy()
    valid = np.isin(label, (0.0, 1.0)) & (score >= 0) & (score <= 1)
    if weighted:
        valid &= np.isfinite(weight) & (weight >= 0)
    assert counts.invalid_rows == len(frame) - valid.sum()
    y, s = label[valid], score[valid]
    sample_weight = weight[valid] if weighted else None
    metrics = {(m.metric, m.threshold): m.value for m in binary_metrics(counts)}
    exact = roc_auc_score(y, s, sample_weight=sample_weight)
    assert abs(metrics[("roc_auc", None)] - exact) <= metrics[("roc_auc_error_bound", None)] + 1e-12
    expected_loss = log_loss(y, s, sample_weight=sample_weight)
    assert metrics[("log_loss", None)] == pytest.approx(expected_loss, rel=1e-12)
    brier = brier_score_loss(y, s, sample_weight=sample_weight)
    assert metrics[("brier", None)] == pytest.approx(brier, rel=1e-12)
    t = 0.5
    tp = np.sum(((y == 1) & (s >= t)) * (1 if sample_weight is None else sample_weight))
    assert metrics[("tp", t)] == pytest.approx(tp, rel=1e-12)


@pytest.mark.parametrize("added_by", ["python", "spark_sql"])
def test_slices_and_their_other_slice_equal_sparks(spark, data, monkeypatch, added_by):
    if added_by == "spark_sql":  # tables too large to add up in Python: Spark SQL sums cells
        monkeypatch.setattr(binary_arrow, "TASK_MAX_CELLS", 1)
    plan = CountPlan(
        label="label",
        scores=("score",),
        buckets=BUCKETS,
        thresholds=THRESHOLDS,
        slices=(("country",), ("country", "device"), ("flag",)),
        max_slices_per_spec=4,  # country has 6 values with null: two go to __other__
    )
    ((arrow, arrow_merged), (spark_groups, spark_merged)), _ = both_readers(spark, data, plan)
    assert_same_groups(arrow, spark_groups)
    assert arrow_merged == spark_merged and arrow_merged
    assert ("score", "flag=true") in arrow and ("score", "country=__other__") in arrow


def test_slice_values_tied_in_rows_are_kept_in_sparks_order(spark, tmp_path):
    values = ["b"] * 30 + ["a"] * 30 + [None] * 30 + ["c"] * 30 + ["d"] * 10
    n = len(values)
    table = pa.table(
        {
            "label": pa.array(np.arange(n) % 2, pa.int8()),
            "score": pa.array(np.linspace(0, 1, n), pa.float64()),
            "tag": pa.array(values, pa.string()),
        }
    )
    path = write_files(tmp_path / "ties", table, files=2, row_group_rows=40)
    plan = CountPlan(
        label="label",
        scores=("score",),
        buckets=16,
        thresholds=(0.5,),
        slices=(("tag",),),
        max_slices_per_spec=2,
    )
    ((arrow, arrow_merged), (spark_groups, spark_merged)), _ = both_readers(spark, path, plan)
    assert_same_groups(arrow, spark_groups)
    assert arrow_merged == spark_merged == {"tag=__other__": 3}
    assert {s for _, s in arrow} == {"ALL", "tag=null", "tag=a", "tag=__other__"}


def test_dense_tables_that_overflow_give_the_same_cells(rows):
    """A task that holds fewer slice values than it meets emits and starts again, or counts a
    batch sparsely: the cells, added up by key, are the same."""
    batches = [
        pa.RecordBatch.from_pydict(
            {"y": b.column("label"), "s0": b.column("score"), "c0": b.column("country")}
        )
        for b in rows.to_batches(max_chunksize=4_000)
    ]
    layout = BinaryLayout(BUCKETS, THRESHOLDS, weighted=False)

    def cells(dense_max_cells: int) -> pd.DataFrame:
        out = binary_arrow.count_partition(
            iter(batches), 1, [["c0"]], layout, 1, dense_max_cells=dense_max_cells
        )
        frame = pa.Table.from_batches(list(out)).to_pandas()
        keys = ["score_index", "spec", "v0", "cell"]
        return frame.groupby(keys, dropna=False).sum().sort_index()

    roomy = cells(binary_arrow.DENSE_MAX_CELLS)
    for tight in (layout.cells * 2, 1):  # two slice values at a time; one (sparse batches)
        pd.testing.assert_frame_equal(cells(tight), roomy, check_exact=False, rtol=1e-12)


@pytest.mark.parametrize("sliced", [True, False])  # Spark SQL / treeReduce adds the tables
def test_multilabel_counts_equal_sparks(spark, tmp_path, sliced):
    rng = np.random.default_rng(9)
    n, k = 6_000, 4
    labels = (rng.random((n, k)) < 0.3).astype(np.int8)
    scores = np.clip(rng.normal(0.3 + 0.4 * labels, 0.2), 0, 1).astype(np.float32)
    label_lists = [list(map(int, r)) for r in labels]
    score_lists = [list(map(float, r)) for r in scores]
    label_lists[5] = None
    score_lists[9] = score_lists[9][:3]
    score_lists[12][1] = float("nan")
    label_lists[15][2] = 3
    table = pa.table(
        {
            "tags": pa.array(label_lists, pa.list_(pa.int8())),
            "tag_scores": pa.array(score_lists, pa.list_(pa.float32())),
            "w": pa.array(rng.integers(1, 4, n), pa.int64()),
            "country": pa.array(rng.choice(["US", "IN", None], n), pa.string()),
        }
    )
    path = write_files(tmp_path / "multi", table, files=2, row_group_rows=700)
    plan = CountPlan(
        label="tags",
        scores=("tag_scores",),
        buckets=64,
        thresholds=(0.5,),
        weight="w",
        slices=(("country",),) if sliced else (),
        task="multilabel",
        classes=tuple(f"c{i}" for i in range(k)),
    )
    ((arrow, _), (spark_groups, _)), _ = both_readers(spark, path, plan)
    assert arrow.keys() == spark_groups.keys()
    for key, counts in spark_groups.items():
        mine = arrow[key]
        for field in ("pos", "neg", "tp_at", "fp_at", "fn_at", "exact_match_at"):
            np.testing.assert_allclose(getattr(mine, field), getattr(counts, field), rtol=1e-12)
        assert mine.rows == counts.rows and dict(mine.invalid) == dict(counts.invalid)
    assert sum(spark_groups[("tag_scores", ALL_ROWS)].invalid.values()) == 4


# --- choosing the reader ---------------------------------------------------------------------


def test_auto_falls_back_to_spark_where_the_arrow_reader_would_differ(
    spark, tmp_path, data, caplog
):
    plan = CountPlan(label="label", scores=("score",), buckets=BUCKETS, thresholds=THRESHOLDS)
    csv = tmp_path / "csv"
    spark.read.parquet(data).select("label", "score").limit(10).write.csv(str(csv), header=True)
    csv_df = spark.read.csv(str(csv), header=True, inferSchema=True)
    csv_input = InputConfig(path=str(csv), format="csv")
    with caplog.at_level(logging.INFO, logger="tally.spark.count"):
        assert arrow_reader(spark, csv_df, plan, csv_input) is None
    assert "input.format is csv, not parquet" in caplog.text
    with pytest.raises(InputError, match=r"input\.reader is 'arrow' but input\.format is csv"):
        arrow_reader(spark, csv_df, plan, InputConfig(path=str(csv), format="csv", reader="arrow"))

    df = spark.read.parquet(data)
    logits = CountPlan(
        label="label", scores=("score",), buckets=8, thresholds=(0.5,), score_transform="sigmoid"
    )
    assert arrow_reader(spark, df, logits, InputConfig(path=data)) is None
    assert arrow_reader(spark, df, plan, InputConfig(path=data, reader="spark")) is None
    assert arrow_reader(spark, df, plan, InputConfig(path=data)) is not None

    partitioned = tmp_path / "partitioned"
    spark.read.parquet(data).write.partitionBy("country").parquet(str(partitioned))
    by_country = CountPlan(
        label="label", scores=("score",), buckets=8, thresholds=(0.5,), slices=(("country",),)
    )
    part_df = spark.read.parquet(str(partitioned))
    assert arrow_reader(spark, part_df, by_country, InputConfig(path=str(partitioned))) is None
    with pytest.raises(InputError, match="country are not stored in the Parquet files"):
        arrow_reader(
            spark, part_df, by_country, InputConfig(path=str(partitioned), reader="arrow")
        )
    # without the partition column, the files of every partition are read
    ((arrow, _), (spark_groups, _)), _ = both_readers(spark, str(partitioned), plan)
    assert_same_groups(arrow, spark_groups)


def test_decimal_scores_go_to_sparks_reader(spark, tmp_path):
    path = tmp_path / "decimal"
    spark.createDataFrame([(1, 0.25), (0, 0.75)], "label int, score double").select(
        "label", F.col("score").cast("decimal(10,4)").alias("score")
    ).write.parquet(str(path))
    plan = CountPlan(label="label", scores=("score",), buckets=8, thresholds=(0.5,))
    df = spark.read.parquet(str(path))
    with pytest.raises(InputError, match="score column 'score' is decimal"):
        arrow_reader(spark, df, plan, InputConfig(path=str(path), reader="arrow"))


def test_config_names_the_reader_key():
    raw = {"model": "m", "columns": {"label": "y", "score": "s"}}
    config = parse_config({**raw, "input": {"path": "p", "reader": "arrow"}})
    assert config.input.reader == "arrow"
    assert parse_config({**raw, "input": {"path": "p"}}).input.reader == "auto"
    with pytest.raises(ConfigError, match=r"input.reader must be one of .*got 'fast'"):
        parse_config({**raw, "input": {"path": "p", "reader": "fast"}})


def test_bucket_into_equals_bucket_of():
    rng = np.random.default_rng(0)
    for buckets in (1, 3, 10, 100, 1000, 1024, 65536):
        edges = np.arange(buckets + 1) / buckets
        s = np.concatenate([rng.random(5_000), edges, np.nextafter(edges, -1)[1:], [0.0, 1.0]])
        out, scratch = np.empty(len(s), np.int64), np.empty(len(s))
        bucket_into(-s, buckets, out, scratch)  # takes the negated scores
        np.testing.assert_array_equal(out, bucket_of(s, buckets))
        below_one = s[s < 1.0]  # no score of 1: the last bucket needs no clamp
        out, scratch = out[: len(below_one)], scratch[: len(below_one)]
        bucket_into(-below_one, buckets, out, scratch, top=False)
        np.testing.assert_array_equal(out, bucket_of(below_one, buckets))



@pytest.mark.parametrize(
    "label_type", [pa.int8(), pa.int64(), pa.bool_(), pa.float32(), pa.float64()]
)
@pytest.mark.parametrize("positive_rate", [0.02, 0.9])
@pytest.mark.parametrize("ends", [False, True])
def test_batches_without_invalid_rows_add_what_scikit_learn_computes(
    label_type, positive_rate, ends
):
    """The path of batches whose minima and maxima show no invalid row: any label type,
    either majority label, with and without scores of exactly 0 and 1 (clip, last bucket)."""
    rng = np.random.default_rng(11)
    n, buckets, thresholds = 20_000, 64, (0.25, 0.5)
    y = (rng.random(n) < positive_rate).astype(np.int8)
    s = rng.random(n).astype(np.float32).astype(np.float64)
    if ends:
        s[:50], s[50:100] = 0.0, 1.0
    layout = BinaryLayout(buckets, thresholds, weighted=False)
    totals = binary_arrow.TaskTotals(1, layout)
    for start in range(0, n, 7_000):
        part = slice(start, start + 7_000)
        labels = pa.array(y[part]).cast(label_type)
        scores = pa.array(s[part].astype(np.float32)) if start else pa.array(s[part])
        totals.add(pa.RecordBatch.from_pydict({"y": labels, "s0": scores}))
    held = totals.sums[(0, 0)]
    above = sum((s >= t).astype(np.int64) for t in thresholds)
    cell = bucket_of(s, buckets) * (len(thresholds) + 1) + above
    np.testing.assert_array_equal(held.by_cell()["n"], np.bincount(cell, minlength=layout.cells))
    np.testing.assert_array_equal(held.by_cell()["wy"], np.bincount(cell, y, layout.cells))
    sums = {name: total[0].sum() for name, total in held.sums.items()}
    assert sums["w_loss"] / n == pytest.approx(log_loss(y, s, labels=[0, 1]), rel=1e-12)
    assert sums["w_sqerr"] / n == pytest.approx(brier_score_loss(y, s), rel=1e-12)
    assert sums["w_score"] == pytest.approx(s.sum(), rel=1e-12)
    assert not totals.invalid_n[(0, 0)].any()

# --- the job ---------------------------------------------------------------------------------


def test_job_writes_the_same_results_and_counts_with_either_reader(spark, data):
    def run(reader: str, model: str) -> tuple[dict, dict]:
        config = parse_config(
            {
                "model": model,
                "input": {"path": data, "reader": reader},
                "columns": {"label": "label", "score": ["score", "score2"], "weight": "w"},
                "metrics": {"buckets": BUCKETS, "thresholds": list(THRESHOLDS)},
                "output": {
                    "table": "readers.metrics",
                    "counts_table": "readers.counts",
                    "curves_table": "readers.curves",
                },
            }
        )
        summary = evaluate(spark, config, dt.date(2026, 11, 30))
        assert summary.rows_read == 30_000
        metrics = spark.table("readers.metrics").where(F.col("model") == model)
        counts = spark.table("readers.counts").where(F.col("model") == model)
        values = {(r.score_column, r.metric, r.threshold): r.value for r in metrics.collect()}
        cells = {
            (r.score_column, r.cell): (r.n, r.w, r.wy, r.w_loss) for r in counts.collect()
        }
        return values, cells

    arrow_values, arrow_cells = run("arrow", "by_arrow")
    spark_values, spark_cells = run("spark", "by_spark")
    assert arrow_values.keys() == spark_values.keys()
    for key, value in spark_values.items():
        if value is None:
            assert arrow_values[key] is None, key
        else:
            assert arrow_values[key] == pytest.approx(value, rel=1e-9), key
    assert arrow_cells.keys() == spark_cells.keys()
    for key, (n, w, wy, w_loss) in spark_cells.items():
        assert arrow_cells[key][0] == n, key
        if key[1] >= 0:  # valid cells: every sum (an invalid cell's sums are never read)
            assert arrow_cells[key][1:] == pytest.approx((w, wy, w_loss), rel=1e-12), key
