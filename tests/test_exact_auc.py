"""Exact ROC AUC and PR AUC by refinement passes: equal to scikit-learn on the same rows."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from tally.errors import InputError
from tally.metrics.binary import roc_auc
from tally.metrics.exact import RefineOptions, exact_auc_metrics, exact_bound, refine_arrays
from tally.plan import CountPlan
from tally.spark.count import count_binary_df
from tally.spark.refine import refine_histogram

TOL = 1e-12


def frame(spark, label, score, weight=None, partitions=1):
    """A DataFrame of the rows (None/NaN kept as given), in ``partitions`` partitions."""
    columns = {
        "label": pa.array(label, pa.float64(), from_pandas=False),
        "score": pa.array(score, pa.float64(), from_pandas=False),
    }
    if weight is not None:
        columns["weight"] = pa.array(weight, pa.float64(), from_pandas=False)
    df = spark.createDataFrame(pa.table(columns))
    return df.repartition(partitions) if partitions > 1 else df.coalesce(1)


def exact(spark, label, score, buckets, weight=None, partitions=1, **options):
    """Pass 1 (count_binary_df) then the refinement passes, as the job runs them."""
    df = frame(spark, label, score, weight, partitions)
    weight_column = "weight" if weight is not None else None
    plan = CountPlan("label", ("score",), buckets, (), weight=weight_column)
    counts = count_binary_df(df, "label", "score", buckets, (), weight_column)
    flat = refine_histogram(df, plan, "score", counts, RefineOptions(**options))
    return counts, flat, {m.metric: m.value for m in exact_auc_metrics(flat)}


def valid_rows(label, score, weight=None):
    """The rows scikit-learn sees: what Tally's validity rules keep."""
    y = np.array([np.nan if v is None else v for v in label], np.float64)
    s = np.array([np.nan if v is None else v for v in score], np.float64)
    w = (
        np.ones_like(s)
        if weight is None
        else np.array([np.nan if v is None else v for v in weight], np.float64)
    )
    with np.errstate(invalid="ignore"):
        keep = (
            np.isin(y, (0.0, 1.0))
            & np.isfinite(s)
            & (s >= 0)
            & (s <= 1)
            & np.isfinite(w)
            & (w >= 0)
        )
    return y[keep], s[keep], (None if weight is None else w[keep])


def nextafter_chain(start: float, length: int) -> np.ndarray:
    out = np.empty(length)
    out[0] = start
    for i in range(1, length):
        out[i] = np.nextafter(out[i - 1], 1.0)
    return out


def adversarial(kind: str, seed: int = 3) -> tuple[list, list]:
    """Labels and scores (lists, None for null) that a 16-bucket histogram gets wrong."""
    rng = np.random.default_rng(seed)
    n = 4000
    y = (rng.random(n) < 0.4).astype(np.float64)
    if kind == "all_ties":  # one score: every pair is a tie, AUC = AP-baseline exactly
        s = np.full(n, 0.37)
    elif kind == "distinct":  # continuous float64, one distinct score per row
        s = rng.random(n)
        s = np.clip(s + 0.1 * y * rng.random(n), 0, 1)
    elif kind == "last_bit":  # scores one ulp apart, all inside one bucket, some repeated
        chain = nextafter_chain(0.3, 1500)
        s = chain[np.sort(rng.integers(0, chain.size, n))]
        y = (rng.random(n) < np.linspace(0.2, 0.7, n)).astype(np.float64)
    elif kind == "mixed":  # real ties, distinct values, bucket edges, 0, -0, 1, invalid rows
        s = rng.random(n)
        s[: n // 4] = np.round(s[: n // 4], 2)
        s[n // 4 : n // 4 + 200] = rng.integers(0, 17, 200) / 16  # exactly on bucket edges
        s[n // 4 + 200 : n // 4 + 300] = nextafter_chain(0.5, 100)
        s[n // 4 + 300 : n // 4 + 320] = -0.0
        s[n // 4 + 320 : n // 4 + 330] = 5e-324
        s = np.where(y == 1, np.minimum(s + 0.05, 1.0), s)
    else:
        raise ValueError(kind)
    label: list = y.tolist()
    score: list = s.tolist()
    if kind == "mixed":
        label[:3] = [None, 2.0, None]
        score[3:8] = [None, float("nan"), float("inf"), 1.5, -0.25]
    return label, score


@pytest.mark.parametrize("partitions", [1, 7])
@pytest.mark.parametrize("kind", ["all_ties", "distinct", "last_bit", "mixed"])
def test_exact_metrics_equal_scikit_learn(spark, kind, partitions):
    label, score = adversarial(kind)
    counts, flat, metrics = exact(spark, label, score, buckets=16, partitions=partitions)
    y, s, _ = valid_rows(label, score)
    assert roc_auc(counts.pos, counts.neg)[1].value > 0  # the buckets alone are not exact
    assert metrics["roc_auc_error_bound"] == 0.0
    assert flat.ap_exact
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=TOL, rel=0)
    assert metrics["pr_auc"] == pytest.approx(average_precision_score(y, s), abs=TOL, rel=0)
    # Reads of the input, pass 1 included: the sort pass makes every kind exact.
    assert flat.passes == 2
    assert flat.pos.dtype == np.int64 and flat.neg.dtype == np.int64


#: Every array of a FlatHistogram: the readers' passes give them bit for bit.
BIN_FIELDS = ("pos", "neg", "single_valued", "low", "high", "resolved", "pairs", "ap")


def test_spark_passes_give_the_numpy_reference_bins(spark):
    """Same sub-bin arithmetic in the JVM and in numpy: identical bins, not just metrics."""
    label, score = adversarial("mixed", seed=8)
    _, flat, _ = exact(spark, label, score, buckets=16, partitions=7)
    y, s, _ = valid_rows(label, score)
    reference = refine_arrays(y, s, 16)
    assert flat.passes == reference.passes
    for field in BIN_FIELDS:
        assert np.array_equal(getattr(flat, field), getattr(reference, field)), field


def ctr_like(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Click-through-rate-like: scores ~ Beta(0.5, 25) (mean ≈ 0.02), crowded near 0."""
    rng = np.random.default_rng(seed)
    s = rng.beta(0.5, 25, n)
    y = (rng.random(n) < np.clip(4 * s, 0, 1)).astype(np.float64)
    return y, s


@pytest.mark.parametrize("buckets", [64, 100])
def test_peaked_scores_are_exact_where_buckets_are_visibly_off(spark, buckets):
    y, s = ctr_like(40_000, seed=5)
    counts, flat, metrics = exact(spark, y.tolist(), s.tolist(), buckets, partitions=3)
    bucketed, bucketed_bound = roc_auc(counts.pos, counts.neg)
    assert bucketed_bound.value > 0.01  # 0.075 (B=64), 0.045 (B=100)
    assert abs(bucketed.value - roc_auc_score(y, s)) > 0.01
    assert flat.passes == 2  # the count, then the sort pass
    assert metrics["roc_auc_error_bound"] == 0.0
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=TOL, rel=0)
    assert metrics["pr_auc"] == pytest.approx(average_precision_score(y, s), abs=TOL, rel=0)


def test_weighted_rows_equal_scikit_learn_sample_weight(spark):
    rng = np.random.default_rng(12)
    n = 6000
    y, s = ctr_like(n, seed=12)
    s[: n // 3] = np.round(s[: n // 3], 3)  # ties
    weight = rng.exponential(2.0, n)
    weight[rng.random(n) < 0.05] = 0.0
    label, score, w = y.tolist(), s.tolist(), weight.tolist()
    w[:4] = [None, float("nan"), -1.0, float("inf")]  # invalid weights: rows skipped
    counts, flat, metrics = exact(spark, label, score, 16, weight=w, partitions=7)
    yv, sv, wv = valid_rows(label, score, w)
    assert counts.weighted and flat.pos.dtype == np.float64
    assert metrics["roc_auc_error_bound"] == 0.0 and flat.ap_exact
    expected_auc = roc_auc_score(yv, sv, sample_weight=wv)
    expected_ap = average_precision_score(yv, sv, sample_weight=wv)
    assert metrics["roc_auc"] == pytest.approx(expected_auc, abs=1e-9, rel=0)
    assert metrics["pr_auc"] == pytest.approx(expected_ap, abs=1e-9, rel=0)


def test_one_pass_keeps_the_bucketed_bound(spark):
    label, score = adversarial("distinct")
    counts, flat, metrics = exact(spark, label, score, 16, max_passes=1)
    y, s, _ = valid_rows(label, score)
    assert flat.passes == 1 and np.array_equal(flat.pos, counts.pos)
    assert metrics["roc_auc_error_bound"] == roc_auc(counts.pos, counts.neg)[1].value > 0
    assert abs(metrics["roc_auc"] - roc_auc_score(y, s)) <= metrics["roc_auc_error_bound"]


def test_bins_too_large_to_sort_are_split_first(spark):
    """``sort_rows`` bounds a reducer's rows: larger buckets get a split pass first."""
    y, s = ctr_like(20_000, seed=2)
    counts, flat, metrics = exact(spark, y.tolist(), s.tolist(), 64, sort_rows=500, partitions=3)
    assert int((counts.pos + counts.neg).max()) > 500
    assert flat.passes == 3  # count, split, sort
    assert metrics["roc_auc_error_bound"] == 0.0 and flat.ap_exact
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=TOL, rel=0)
    assert metrics["pr_auc"] == pytest.approx(average_precision_score(y, s), abs=TOL, rel=0)


def test_too_few_passes_to_split_leave_a_smaller_bound_that_holds(spark):
    y, s = ctr_like(20_000, seed=2)
    counts, flat, metrics = exact(spark, y.tolist(), s.tolist(), 64, sort_rows=500, max_passes=2)
    bucketed_bound = roc_auc(counts.pos, counts.neg)[1].value
    assert flat.passes == 2  # the small buckets are sorted, the large ones keep their bound
    assert 0 < metrics["roc_auc_error_bound"] < bucketed_bound
    assert flat.resolved.any() and not flat.resolved.all()
    assert abs(metrics["roc_auc"] - roc_auc_score(y, s)) <= metrics["roc_auc_error_bound"]


def test_tolerance_stops_early_without_average_precision(spark):
    y, s = ctr_like(20_000, seed=4)
    _, flat, metrics = exact(spark, y.tolist(), s.tolist(), 64, tolerance=1e-4, refine_ap=False)
    assert flat.passes == 2
    assert 0 < metrics["roc_auc_error_bound"] <= 1e-4  # only the buckets needed are sorted
    assert not flat.resolved.all()
    assert abs(metrics["roc_auc"] - roc_auc_score(y, s)) <= metrics["roc_auc_error_bound"]


def test_an_input_that_changes_between_passes_fails(spark):
    label, score = adversarial("distinct")
    df = frame(spark, label, score)
    plan = CountPlan("label", ("score",), 16, ())
    other = count_binary_df(df.limit(3000), "label", "score", 16, ())
    with pytest.raises(InputError, match="other rows"):
        refine_histogram(df, plan, "score", other)


# The arrow reader's passes (tally.spark.refine_arrow): Parquet files read by pyarrow.


def exact_from_files(
    spark,
    tmp_path,
    label,
    score,
    buckets,
    weight=None,
    score_type=None,
    reader="arrow",
    **options,
):
    """Pass 1 and the refinement passes as the job runs them on Parquet files (the arrow
    reader, or ``reader="spark"``), over 3 files of 700-row row groups read in several
    byte ranges."""
    import pyarrow.parquet as pq

    from tally.config import InputConfig
    from tally.plan import ALL_ROWS
    from tally.spark.count import arrow_reader, count_tables
    from tally.spark.readers import SQL_READER

    columns = {
        "label": pa.array(label, pa.float64(), from_pandas=False),
        "score": pa.array(score, pa.float64(), from_pandas=False).cast(score_type or pa.float64()),
    }
    if weight is not None:
        columns["weight"] = pa.array(weight, pa.float64(), from_pandas=False)
    table = pa.table(columns)
    path = tmp_path / f"rows-{reader}"
    path.mkdir()
    bounds = np.linspace(0, table.num_rows, 4).astype(int)
    for i in range(3):
        part = table.slice(bounds[i], bounds[i + 1] - bounds[i])
        pq.write_table(part, path / f"part-{i}.parquet", row_group_size=700)
    weight_column = "weight" if weight is not None else None
    plan = CountPlan("label", ("score",), buckets, (), weight=weight_column)
    df = spark.read.parquet(str(path))
    direct = arrow_reader(spark, df, plan, InputConfig(path=str(path), reader=reader))
    direct = direct or SQL_READER
    tables = count_tables(df, plan, direct)
    try:
        counts = tables.groups(plan)[("score", ALL_ROWS)]
    finally:
        tables.release()
    flat = refine_histogram(df, plan, "score", counts, RefineOptions(**options), reader=direct)
    return flat, {m.metric: m.value for m in exact_auc_metrics(flat)}


@pytest.mark.parametrize("kind", ["all_ties", "last_bit", "mixed"])
def test_arrow_reader_passes_give_the_numpy_reference_bins(spark, spark_conf, tmp_path, kind):
    label, score = adversarial(kind, seed=8)
    with spark_conf(spark__sql__files__maxPartitionBytes="20k"):  # several tasks
        flat, metrics = exact_from_files(spark, tmp_path, label, score, buckets=16)
    y, s, _ = valid_rows(label, score)
    reference = refine_arrays(y, s, 16)
    assert flat.passes == reference.passes > 1
    for field in BIN_FIELDS:
        assert np.array_equal(getattr(flat, field), getattr(reference, field)), field
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=TOL, rel=0)
    assert metrics["pr_auc"] == pytest.approx(average_precision_score(y, s), abs=TOL, rel=0)


def test_arrow_reader_passes_on_weighted_peaked_scores_equal_scikit_learn(spark, tmp_path):
    rng = np.random.default_rng(21)
    y, s = ctr_like(30_000, seed=21)
    weight = rng.exponential(2.0, y.size)
    label, score, w = y.tolist(), s.tolist(), weight.tolist()
    w[:3] = [None, -1.0, float("inf")]  # invalid weights: rows skipped
    flat, metrics = exact_from_files(spark, tmp_path, label, score, 64, weight=w)
    yv, sv, wv = valid_rows(label, score, w)
    assert flat.pos.dtype == np.float64 and flat.passes > 1
    assert metrics["roc_auc_error_bound"] == 0.0 and flat.ap_exact
    expected = roc_auc_score(yv, sv, sample_weight=wv)
    assert metrics["roc_auc"] == pytest.approx(expected, abs=1e-9, rel=0)
    expected_ap = average_precision_score(yv, sv, sample_weight=wv)
    assert metrics["pr_auc"] == pytest.approx(expected_ap, abs=1e-9, rel=0)


def float32_adversarial(seed: int = 6) -> tuple[list, np.ndarray]:
    """Labels and float32 scores: peaked, ties, runs of adjacent float32 values,
    float32 values next to the edges of 100 buckets (not float32 themselves), 0, -0,
    the smallest float32, 1."""
    rng = np.random.default_rng(seed)
    n = 5000
    s = rng.beta(0.5, 25, n).astype(np.float32)
    s[:500] = np.round(s[:500], 3)
    run = np.float32(0.3) + np.arange(300, dtype=np.float32) * np.spacing(np.float32(0.3))
    s[500:800] = run[rng.integers(0, 300, 300)]
    edges = np.float32(rng.integers(1, 100, 300) / 100)
    s[800:1100] = np.nextafter(edges, np.float32(rng.choice([0.0, 1.0], 300)))
    s[1100:1110] = -0.0
    s[1110:1120] = np.float32(1e-45)
    s[1120:1130] = 1.0
    y = (rng.random(n) < np.clip(4 * s.astype(np.float64), 0.2, 0.8)).astype(np.float64)
    return y.tolist(), s


@pytest.mark.parametrize("weighted", [False, True])
def test_float32_scores_both_readers_identical_and_equal_scikit_learn(spark, tmp_path, weighted):
    """A float32 column is sorted by its float32 bit pattern, under either reader, into
    many reducers (``part_rows``): the same bins, equal to scikit-learn."""
    label, s32 = float32_adversarial()
    weight = np.random.default_rng(2).exponential(size=s32.size).tolist() if weighted else None
    runs = {
        reader: exact_from_files(
            spark,
            tmp_path,
            label,
            s32.astype(np.float64).tolist(),
            100,
            weight=weight,
            score_type=pa.float32(),
            reader=reader,
            part_rows=400,
        )
        for reader in ("arrow", "spark")
    }
    (flat, metrics), (other, _) = runs["arrow"], runs["spark"]
    assert flat.passes == other.passes == 2
    fields = BIN_FIELDS if not weighted else ("resolved", "single_valued", "low", "high")
    for field in fields:
        assert np.array_equal(getattr(flat, field), getattr(other, field)), field
    y, s = np.asarray(label), s32.astype(np.float64)
    tol = TOL if not weighted else 1e-9
    assert metrics["roc_auc_error_bound"] == 0.0 and flat.ap_exact
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, s, sample_weight=weight), abs=tol)
    expected_ap = average_precision_score(y, s, sample_weight=weight)
    assert metrics["pr_auc"] == pytest.approx(expected_ap, abs=tol, rel=0)
    reference = refine_arrays(
        y, s, 100, None if weight is None else np.asarray(weight), narrow=True
    )
    for field in fields:
        assert np.array_equal(getattr(flat, field), getattr(reference, field)), field


def test_float64_scores_both_readers_identical(spark, tmp_path):
    label, score = adversarial("mixed", seed=9)
    runs = [
        exact_from_files(spark, tmp_path, label, score, 16, reader=r, parallelism=3)
        for r in ("arrow", "spark")
    ]
    for field in BIN_FIELDS:
        assert np.array_equal(getattr(runs[0][0], field), getattr(runs[1][0], field)), field
    y, s, _ = valid_rows(label, score)
    assert runs[0][1]["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=TOL, rel=0)


def test_sort_keys_order_scores_and_bucket_edges():
    """The bit pattern of a non-negative float orders it; -0 is 0; a bucket's lower key
    is the smallest float32 at or above its edge."""
    from tally.kernels.exact_sort import low_keys, score_keys

    rng = np.random.default_rng(0)
    s = np.r_[rng.random(1000), rng.random(1000) * 1e-30, 0.0, -0.0, 5e-324, 1.0]
    for narrow in (False, True):
        v = s.astype(np.float32).astype(np.float64) if narrow else s
        keys = score_keys(v, narrow)
        order = np.argsort(keys, kind="stable")
        assert np.all(np.diff(v[order]) >= 0)
        assert score_keys(np.array([-0.0]), narrow)[0] == score_keys(np.array([0.0]), narrow)[0]
    edges = np.arange(101) / 100
    low = low_keys(edges, narrow=True)
    as_float = low.view(np.float32).astype(np.float64)
    assert np.all(as_float >= edges)
    below = np.nextafter(low.view(np.float32), np.float32(0)).astype(np.float64)
    assert np.all((below < edges) | (edges == 0))


def test_step_tables_walk_rows_as_the_numpy_reference_does():
    """Table look-ups and the reference's sorted search move every row the same way."""
    from tally.kernels.refine import StepTables
    from tally.metrics.exact import Step, walk

    rng = np.random.default_rng(4)
    s = np.concatenate([rng.random(5_000), [0.0, 1.0, 0.5]])
    buckets = 8
    first = Step(  # buckets 1, 3, 6 split in 10, bucket 4 passed on, the rest dropped
        parent=np.array([6, 1, 4, 3]),
        split=np.array([True, True, False, True]),
        lo=np.array([0.75, 0.125, 0.5, 0.375]),
        hi=np.array([0.8, 0.25, 0.625, 0.5]),
        base=np.array([100, 110, 7, 120]),
        resolution=10,
    )
    second = Step(  # some sub-bins of the first step split again, node 7 passed on
        parent=np.array([113, 7, 101, 125]),
        split=np.array([True, False, True, True]),
        lo=np.array([0.16, 0.5, 0.755, 0.4]),
        hi=np.array([0.2, 0.625, 0.76, 0.44]),
        base=np.array([200, 300, 210, 220]),
        resolution=4,
    )
    for steps in ([first], [first, second]):
        rows, node = StepTables(steps).walk(s, buckets)
        ref_rows, ref_node = walk(s, buckets, steps)
        assert rows.size > 100
        np.testing.assert_array_equal(rows, ref_rows)
        np.testing.assert_array_equal(node, ref_node)


# Pure numpy (no Spark): the refinement loop on many small adversarial inputs.


def worst_case_auc_gap(flat) -> float:
    """How far the AUC of ``flat``'s bins can be from the exact one, by scikit-learn.

    Inside a bin whose scores are not all equal and that was not sorted, the rows may be
    ordered any way; the bucketed AUC counts its pairs as ties. The largest gap is reached
    when every positive of each such bin scores above its negatives: rebuild that
    ordering as weighted rows
    (one row per bin and class, weight = its count) and score both with scikit-learn.
    """
    bins = np.arange(flat.bins, dtype=np.float64)
    lift = np.where(flat.exact, 0.0, 0.5)  # positives above negatives in the bin
    labels = np.r_[np.ones(flat.bins), np.zeros(flat.bins)]
    weights = np.r_[flat.pos, flat.neg].astype(np.float64)
    if weights[labels == 1].sum() == 0 or weights[labels == 0].sum() == 0:
        return 0.0
    tied = roc_auc_score(labels, np.r_[bins, bins], sample_weight=weights)
    apart = roc_auc_score(labels, np.r_[bins + lift, bins], sample_weight=weights)
    return apart - tied


def random_case(rng: np.random.Generator, kind: int):
    n = int(rng.integers(2, 200))
    if kind == 0:
        s = rng.random(n)
    elif kind == 1:
        s = np.round(rng.random(n), int(rng.integers(0, 3)))
    elif kind == 2:
        s = nextafter_chain(float(rng.random()), n)[rng.integers(0, n, n)]
        s = np.minimum(s, 1.0)
    elif kind == 3:
        s = rng.beta(0.5, 25, n)
    else:
        values = [0.0, 1.0, 0.5, np.nextafter(0.5, 1), np.nextafter(0.5, 0), 5e-324, 0.75]
        s = rng.choice(values, n)
    y = (rng.random(n) < rng.random()).astype(np.float64)
    y[:2] = [0.0, 1.0]
    return y, s


def test_numpy_refinement_equals_scikit_learn_and_bounds_hold():
    rng = np.random.default_rng(0)
    for case in range(400):
        y, s = random_case(rng, case % 5)
        w = rng.exponential(size=s.size) if case % 3 == 0 else None
        buckets = int(rng.choice([1, 3, 16, 100]))
        budget = int(rng.choice([2, 8, 1 << 20]))
        passes = int(rng.choice([1, 2, 10]))
        flat = refine_arrays(y, s, buckets, w, RefineOptions(cell_budget=budget, max_passes=passes))
        metrics = {m.metric: m.value for m in exact_auc_metrics(flat)}
        tol = TOL if w is None else 1e-9
        auc = roc_auc_score(y, s, sample_weight=w)
        assert abs(metrics["roc_auc"] - auc) <= metrics["roc_auc_error_bound"] + tol, case
        worst = worst_case_auc_gap(flat)
        assert metrics["roc_auc_error_bound"] == pytest.approx(worst, abs=1e-12, rel=1e-9), case
        if flat.ap_exact:
            ap = average_precision_score(y, s, sample_weight=w)
            assert metrics["pr_auc"] == pytest.approx(ap, abs=tol, rel=0), case
        if budget == 1 << 20 and passes == 10:
            assert exact_bound(flat) == 0 and flat.ap_exact, case


def test_numpy_reference_counts_like_pass_one():
    y, s = ctr_like(5000, seed=1)
    flat = refine_arrays(y, s, 64, options=RefineOptions(max_passes=1))
    # per row: bucket b holds b / 64 <= s < (b + 1) / 64, and s = 1 the last bucket
    bucket = np.minimum(np.floor(s * 64), 63).astype(np.int64)
    assert np.array_equal(flat.pos, np.bincount(bucket[y == 1], minlength=64))
    assert np.array_equal(flat.neg, np.bincount(bucket[y == 0], minlength=64))
    assert flat.passes == 1


def test_one_class_needs_no_further_pass():
    s = np.random.default_rng(3).random(500)
    for y in (np.zeros(500), np.ones(500)):
        flat = refine_arrays(y, s, 16)
        assert flat.passes == 1 and exact_bound(flat) == 0.0


@pytest.mark.parametrize("narrow", [False, True])
def test_sorted_bins_count_every_pair_as_brute_force_does(narrow):
    """Per bin, ``pairs`` is the number of (positive, negative) pairs with the positive
    scoring higher, plus ½ per tie, counted pair by pair; weighted rows of weight 1 give
    the same; ``ap`` from either path is the same."""
    from tally.kernels.exact_sort import (
        PartRows,
        SortLayout,
        counted_sums,
        weighted_sums,
    )

    rng = np.random.default_rng(7)
    s = tricky_scores(rng, 3000, narrow)
    y = rng.random(s.size) < 0.3
    buckets = 10
    node = np.minimum(np.floor(s * buckets), buckets - 1).astype(np.int64)
    node[node == 3] = -1  # a bucket not sorted: its rows are dropped
    chosen = np.array([b for b in range(buckets) if b != 3])
    layout = SortLayout(
        0, np.where(np.arange(buckets) == 3, -1, 0).astype(np.int32), 1, narrow, False
    )
    rows = PartRows(layout)
    rows.add(s, y, None, np.where(node < 0, 3, node))
    ((_, (packed, _)),) = list(rows.chunks())
    job = one_part_job(rng, chosen / buckets, narrow)
    counted = counted_sums(np.sort(packed), job, 0, chosen.size)
    order = np.argsort(packed, kind="stable")
    weighted = weighted_sums(packed[order], np.ones(packed.size), job, 0, chosen.size)
    assert_bins_as_brute_force(counted, s, y, node, chosen)
    np.testing.assert_allclose(weighted.pairs, counted.pairs, rtol=0, atol=1e-9)
    np.testing.assert_allclose(counted.ap, weighted.ap, rtol=1e-12)


def tricky_scores(rng: np.random.Generator, n: int, narrow: bool) -> np.ndarray:
    """Scores with ties (3 decimals), crowding near 0, runs one ulp apart, 0.0 and -0.0;
    float32 values when ``narrow``."""
    q = n // 4
    s = np.r_[
        np.round(rng.random(q), 3),
        rng.random(q) ** 6,
        nextafter_chain(0.3, q)[rng.integers(0, q, q)],
        rng.random(n - 3 * q),
    ]
    s[:20] = [0.0, -0.0] * 10
    return s.astype(np.float32).astype(np.float64) if narrow else s


def one_part_job(rng: np.random.Generator, edges: np.ndarray, narrow: bool):
    """A :class:`SortJob` of one part over bins with lower edges ``edges`` (random
    positives and negatives above each)."""
    from tally.kernels.exact_sort import SortJob, low_keys

    above = rng.integers(0, 50, (2, edges.size)).astype(np.float64)
    return SortJob(
        low_keys(edges, narrow), above[0], above[1], np.array([0, edges.size]), narrow, False
    )


def assert_bins_as_brute_force(sums, s, y, node, chosen) -> None:
    """Per bin: pairs counted pair by pair (ties ½), rows, positives, negatives, the
    smallest and largest score and single-valued bins, as numpy finds them per row."""
    for i, b in enumerate(chosen):
        inside = node == b
        sp, sn = s[inside & y], s[inside & ~y]
        brute = float(np.sum(sp[:, None] > sn[None, :]) + 0.5 * np.sum(sp[:, None] == sn[None, :]))
        assert sums.pairs[i] == brute, b
        assert sums.rows[i] == inside.sum() and sums.pos[i] == sp.size and sums.neg[i] == sn.size
        if inside.any():
            assert sums.low[i] == s[inside].min() and sums.high[i] == s[inside].max(), b
        assert sums.single[i] == (np.unique(s[inside]).size == 1), b


@pytest.mark.parametrize("narrow", [False, True])
@pytest.mark.parametrize("table_bits", [1, 3, 6, 12])
@pytest.mark.parametrize(
    ("block_rows", "piece_rows"), [(None, None), (1, None), (7, None), (7, 3), (1000, 64)]
)
def test_counted_negatives_give_every_bin_as_brute_force_does(
    monkeypatch, narrow, table_bits, block_rows, piece_rows
):
    """Sorting only the kept sub-bins' rows and counting the other negatives
    (``split_rows``): per bin, pairs counted pair by pair, rows, positives, the smallest
    and largest score and single-valued bins as numpy finds them from every row;
    ``ap`` as the weighted path gives it. Coarse tables put many rows in a sub-bin,
    bins edges inside sub-bins, and ties across them; the rows are read in blocks of
    ``block_rows`` (``SPLIT_BLOCK_ROWS``; None: one block), which cut the chunks
    anywhere, and in pieces of ``piece_rows`` (``SPLIT_PIECE_ROWS``) whose sub-bins
    fill a block across chunks before they are counted."""
    from tally.kernels import exact_sort
    from tally.kernels.exact_sort import (
        counted_sums,
        pack,
        score_keys,
        split_rows,
        weighted_sums,
    )

    if block_rows is not None:
        monkeypatch.setattr(exact_sort, "SPLIT_BLOCK_ROWS", block_rows)
    if piece_rows is not None:
        monkeypatch.setattr(exact_sort, "SPLIT_PIECE_ROWS", piece_rows)

    rng = np.random.default_rng(table_bits)
    s = tricky_scores(rng, 4000, narrow)
    y = rng.random(s.size) < 0.1
    buckets = 10
    node = np.minimum(np.floor(s * buckets), buckets - 1).astype(np.int64)
    chosen = np.arange(1, buckets)  # bin 0 is not sorted: its rows are left out
    keep = node >= 1
    packed = pack(score_keys(s[keep], narrow), y[keep])
    rng.shuffle(packed)
    job = one_part_job(rng, chosen / buckets, narrow)
    kept, gaps = split_rows(packed.copy(), job, 0, chosen.size, table_bits)
    if table_bits >= 6:  # some negatives are only counted
        assert kept.size < packed.size
    # a reducer's chunks as received (some empty), not concatenated: the same rows
    chunks = np.array_split(packed, [0, 5, 5, 1000, 3999])
    kept_chunks, gaps_chunks = split_rows(chunks, job, 0, chosen.size, table_bits)
    assert np.array_equal(kept_chunks, kept)
    assert np.array_equal(gaps_chunks.through, gaps.through)
    assert (gaps_chunks.base, gaps_chunks.shift) == (gaps.base, gaps.shift)
    got = counted_sums(kept, job, 0, chosen.size, gaps)
    assert_bins_as_brute_force(got, s, y, node, chosen)
    order = np.argsort(packed, kind="stable")
    weighted = weighted_sums(packed[order], np.ones(packed.size), job, 0, chosen.size)
    np.testing.assert_allclose(got.ap, weighted.ap, rtol=1e-12)


@pytest.mark.parametrize("narrow", [False, True])
@pytest.mark.parametrize("table_bits", [4, 7, 10])
@pytest.mark.parametrize("scratch_rows", [0, 1 << 16])
def test_trimmed_sub_bins_give_every_bin_as_brute_force_does(
    monkeypatch, narrow, table_bits, scratch_rows
):
    """Sub-bins holding several positives and many negatives (runs of adjacent floats,
    ties at the smallest and largest positive of a sub-bin, bin edges inside the
    runs): only the rows from each sub-bin's smallest positive to its largest are
    sorted (``_trimmed``), the negatives below and above them counted, and every bin's
    pairs, rows, extremes and ``ap`` are still those of every row. ``scratch_rows``:
    the reducer's buffer, too small to reuse (0) or large enough."""
    from tally.kernels import exact_sort
    from tally.kernels.exact_sort import counted_sums, pack, score_keys, split_rows, weighted_sums

    monkeypatch.setattr(exact_sort, "SPLIT_BLOCK_ROWS", max(scratch_rows, 1))
    rng = np.random.default_rng(table_bits + 100 * narrow)
    start = np.float32(0.3) if narrow else 0.3
    run = start + np.arange(3000, dtype=type(start)) * np.spacing(start)
    s = np.r_[run[rng.integers(0, 3000, 6000)], run[rng.integers(0, 40, 400)]].astype(np.float64)
    y = rng.random(s.size) < 0.05
    y[s == s.min()] = False  # the smallest scores negatives, a positive tied above them
    edges = np.unique(np.r_[s.min(), run[[100, 1100, 2100, 2101]]].astype(np.float64))
    node = np.searchsorted(edges, s, side="right") - 1
    packed = pack(score_keys(s, narrow), y)
    rng.shuffle(packed)
    job = one_part_job(rng, edges, narrow)
    kept, gaps = split_rows(np.array_split(packed, 3), job, 0, edges.size, table_bits)
    sub = ((packed >> packed.dtype.type(1)) - packed.dtype.type(gaps.base)) >> gaps.shift
    in_positive_subs = np.isin(sub, np.unique(sub[(packed & 1) == 1])).sum()
    assert kept.size < in_positive_subs  # negatives of sub-bins with a positive counted
    got = counted_sums(kept, job, 0, edges.size, gaps)
    assert_bins_as_brute_force(got, s, y, node, np.arange(edges.size))
    order = np.argsort(packed, kind="stable")
    weighted = weighted_sums(packed[order], np.ones(packed.size), job, 0, edges.size)
    np.testing.assert_allclose(got.ap, weighted.ap, rtol=1e-12)


def test_carve_lays_arrays_in_the_scratch_or_gives_fresh_ones():
    """``_carve``: the arrays share the scratch's memory, one after another, 8-byte
    aligned and not overlapping, where they fit; all fresh where they do not."""
    from tally.kernels.exact_sort import _carve

    scratch = np.zeros(16, np.intp)  # 128 bytes
    a, b, c = _carve(scratch, [(3, np.uint32), (4, np.intp), (5, np.uint32)])
    assert (a.shape, b.shape, c.shape) == ((3,), (4,), (5,))
    assert (a.dtype, b.dtype, c.dtype) == (np.uint32, np.intp, np.uint32)
    assert all(np.shares_memory(x, scratch) for x in (a, b, c))
    assert b.ctypes.data % 8 == 0 and c.ctypes.data % 8 == 0
    a[:], b[:], c[:] = 7, 8, 9
    assert (a == 7).all() and (b == 8).all() and (c == 9).all()
    fresh = _carve(scratch, [(3, np.uint32), (20, np.intp)])
    assert not any(np.shares_memory(x, scratch) for x in fresh)
    assert [x.shape for x in fresh] == [(3,), (20,)]


def narrow_span_scores(rng: np.random.Generator, kind: str, n: int) -> tuple[np.ndarray, bool]:
    """Scores whose keys span few values (the table path of ``value_counts``), and
    whether they are sorted as float32: runs of adjacent floats with ties, 0.0 and
    -0.0 and subnormals, float32 values stored as float64 (29 zero low bits of every
    key), float64 keys 2^14 apart and a single value."""
    if kind == "float32_run":
        run = np.float32(0.3) + np.arange(500, dtype=np.float32) * np.spacing(np.float32(0.3))
        return run[rng.integers(0, 500, n)].astype(np.float64), True
    if kind == "float64_run":
        return nextafter_chain(0.3, 500)[rng.integers(0, 500, n)], False
    if kind == "float32_as_float64":
        run = np.float32(0.0101) + np.arange(3000, dtype=np.float32) * np.spacing(np.float32(0.01))
        return run[rng.integers(0, 3000, n)].astype(np.float64), False
    if kind == "multiples":  # keys 2^14 apart (14 zero low bits), 2^19 values
        return 0.25 + rng.integers(0, 1 << 19, n) * 2.0**-40, False
    if kind == "subnormal":  # 0.0, -0.0 and the smallest doubles: keys 0 … 999
        s = rng.integers(0, 1000, n) * 5e-324
        s[:10] = [0.0, -0.0] * 5
        return s, False
    return np.full(n, 0.37), False


@pytest.mark.parametrize(
    "kind",
    ["float32_run", "float64_run", "float32_as_float64", "multiples", "subnormal", "one_value"],
)
def test_rows_counted_per_value_give_the_sorted_sums_bit_for_bit(monkeypatch, kind):
    """Keys spanning few values are counted per (value, label) in one table, without a
    sort (``value_counts``): per bin, pairs counted pair by pair, rows, positives, the
    smallest and largest score and single-valued bins as numpy finds them from every
    row, and every field equal, bit for bit, to what the sort path gives the same rows
    (``DENSE_SLOTS`` 0); a reducer's chunks (some empty) as one array."""
    from tally.kernels import exact_sort
    from tally.kernels.exact_sort import pack, score_keys, unweighted_sums, value_counts

    rng = np.random.default_rng(len(kind))
    s, narrow = narrow_span_scores(rng, kind, 6000)
    y = rng.random(s.size) < 0.2
    values = np.unique(s)
    # bin edges at, between and beyond the values: some bins empty, some single-valued
    edges = np.unique(
        np.r_[0.0, values[:: max(1, values.size // 7)], np.nextafter(values[3::50], 1)]
    )
    node = np.searchsorted(edges, s, side="right") - 1
    chosen = np.arange(edges.size)
    packed = pack(score_keys(s, narrow), y)
    rng.shuffle(packed)
    job = one_part_job(rng, edges, narrow)
    chunks = np.array_split(packed, [0, 7, 7, 2000])
    assert value_counts(chunks, job.low) is not None
    got = unweighted_sums(chunks, job, 0, chosen.size)
    assert_bins_as_brute_force(got, s, y, node, chosen)
    assert np.array_equal(got.single, [np.unique(s[node == b]).size == 1 for b in chosen])
    monkeypatch.setattr(exact_sort, "DENSE_SLOTS", 0)
    assert value_counts(chunks, job.low) is None
    sorted_path = unweighted_sums([packed], job, 0, chosen.size)
    for field in exact_sort.BinSums.__dataclass_fields__:
        assert np.array_equal(getattr(got, field), getattr(sorted_path, field), equal_nan=True), (
            field
        )
        assert getattr(got, field).dtype == getattr(sorted_path, field).dtype, field


def test_value_counts_refuse_rows_below_their_lowest_bin():
    from tally.kernels.exact_sort import low_keys, pack, score_keys, value_counts

    packed = pack(score_keys(np.array([0.25, 0.5]), False), np.array([True, False]))
    with pytest.raises(ValueError, match="below the lowest bin"):
        value_counts([packed], low_keys(np.array([0.3]), False))


def test_shipped_parts_sorted_or_by_value_equal_scikit_learn(monkeypatch):
    """The numpy reference of one read (parts summed by ``part_sums``) with every part
    sorted (``DENSE_SLOTS`` 0) gives the bins of the default's choice (a table per part
    where its keys span few values), bit for bit, as do two reads; ROC AUC and average
    precision equal scikit-learn's."""
    from tally.kernels import exact_sort
    from tally.kernels.buckets import bucket_of
    from tally.kernels.exact_sort import bucket_parts
    from tally.metrics.exact import refine_shipped_arrays

    cases = {kind: one_read_case(kind) for kind in ONE_READ_CASES}
    rng = np.random.default_rng(11)
    for kind in ("float32_run", "float32_as_float64", "multiples"):
        s, narrow = narrow_span_scores(rng, kind, 5000)
        y = (rng.random(s.size) < 0.3).astype(np.float64)
        cases[kind] = (y.tolist(), s.tolist(), 4096, pa.float32() if narrow else None)

    def shipped(label, score, buckets, score_type):
        y, v, _ = valid_rows(label, score)
        start = bucket_parts(bucket_of(v[::7], buckets), buckets, 3, 1.0 + 24 * y[::7])
        return refine_shipped_arrays(label, score, buckets, start, narrow=score_type is not None)

    defaults = {kind: shipped(*case) for kind, case in cases.items()}
    monkeypatch.setattr(exact_sort, "DENSE_SLOTS", 0)
    for kind, (label, score, buckets, score_type) in cases.items():
        flat = shipped(label, score, buckets, score_type)
        two_reads = refine_arrays(label, score, buckets, narrow=score_type is not None)
        for field in BIN_FIELDS:
            assert np.array_equal(getattr(flat, field), getattr(defaults[kind], field)), field
            assert np.array_equal(getattr(two_reads, field), getattr(flat, field)), field
        y, v, _ = valid_rows(label, score)
        metrics = {m.metric: m.value for m in exact_auc_metrics(flat)}
        assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, v), abs=TOL, rel=0), kind
        ap = average_precision_score(y, v)
        assert metrics["pr_auc"] == pytest.approx(ap, abs=TOL, rel=0), kind


@pytest.mark.parametrize("table_bits", [1, 4, 10])
def test_coarse_sub_bins_still_equal_scikit_learn(monkeypatch, table_bits):
    """The numpy reference (same reducers as Spark) with few sub-bins per reducer, so
    that most rows share a sub-bin with a positive or are counted in bulk: ROC AUC and
    average precision equal scikit-learn's on the same rows, bound 0."""
    from tally.kernels import exact_sort

    monkeypatch.setattr(exact_sort, "TABLE_BITS", table_bits)
    rng = np.random.default_rng(table_bits)
    cases = [random_case(rng, case % 5) for case in range(100)] + [ctr_like(20_000, 2)]
    for case, (y, s) in enumerate(cases):
        for narrow in (False, True):
            v = s.astype(np.float32).astype(np.float64) if narrow else s
            buckets = int(rng.choice([1, 3, 16, 100]))
            options = RefineOptions(parallelism=int(rng.integers(1, 4)), part_rows=500)
            flat = refine_arrays(y, v, buckets, options=options, narrow=narrow)
            metrics = {m.metric: m.value for m in exact_auc_metrics(flat)}
            assert exact_bound(flat) == 0 and flat.ap_exact, case
            assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, v), abs=TOL, rel=0), case
            ap = average_precision_score(y, v)
            assert metrics["pr_auc"] == pytest.approx(ap, abs=TOL, rel=0), case


@pytest.mark.parametrize("parts", [1, 3, 40])
@pytest.mark.parametrize("weighted", [False, True])
def test_part_rows_group_each_batch_by_part(parts, weighted):
    """Each part's chunks hold exactly its rows (as a multiset, packed as ``pack`` packs
    them), their weights beside them; rows of bins not sorted are dropped. Few parts
    go through one mask each, many through a sort of the part numbers."""
    from tally.kernels.exact_sort import PartRows, SortLayout, pack, score_keys

    rng = np.random.default_rng(parts)
    n, buckets = 5000, 64
    s = rng.random(n)
    y = rng.random(n) < 0.3
    w = rng.random(n) if weighted else None
    node = np.minimum(np.floor(s * buckets), buckets - 1).astype(np.int64)
    part_of = np.minimum(np.arange(buckets) * parts // buckets, parts - 1).astype(np.int32)
    part_of[5] = -1
    layout = SortLayout(0, part_of, parts, False, weighted)
    rows = PartRows(layout)
    for at in range(0, n, 1200):
        rows.add(
            s[at : at + 1200],
            y[at : at + 1200],
            None if w is None else w[at : at + 1200],
            node[at : at + 1200],
        )
    got: dict[int, list] = {}
    for k, (packed, weights) in rows.chunks():
        got.setdefault(k, []).append((packed, weights))
    packed_all = pack(score_keys(s, False), y)
    for k in range(parts):
        inside = part_of[node] == k
        chunks = got.get(k, [])
        mine = np.concatenate([c[0] for c in chunks]) if chunks else packed_all[:0]
        assert np.array_equal(np.sort(mine), np.sort(packed_all[inside])), k
        if weighted and chunks:
            pairs = sorted(
                zip(mine.tolist(), np.concatenate([c[1] for c in chunks]).tolist(), strict=True)
            )
            assert pairs == sorted(
                zip(packed_all[inside].tolist(), w[inside].tolist(), strict=True)
            ), k
    assert sum(c[0].size for cs in got.values() for c in cs) == int((part_of[node] >= 0).sum())


# Exact AUC in one read: the arrow reader's count pass ships the rows to the reducers.


def shipped_from_files(
    spark, spark_conf, tmp_path, label, score, buckets, score_type=None, transport="auto", **opts
):
    """Pass 1 with the rows shipped (the reader ``tally evaluate`` counts exact mode
    with, :func:`tally.spark.refine.exact_reader`; ``transport``: how the rows reach the
    reducers, ``auto`` files in the tests' local Spark), then :func:`refine_histogram`,
    over 3 files of 700-row row groups read in several tasks."""
    import dataclasses

    import pyarrow.parquet as pq

    from tally.config import InputConfig
    from tally.plan import ALL_ROWS
    from tally.spark.count import arrow_reader, count_tables
    from tally.spark.refine import exact_reader

    table = pa.table(
        {
            "label": pa.array(label, pa.float64(), from_pandas=False),
            "score": pa.array(score, pa.float64(), from_pandas=False).cast(
                score_type or pa.float64()
            ),
        }
    )
    path = tmp_path / "shipped"
    path.mkdir()
    bounds = np.linspace(0, table.num_rows, 4).astype(int)
    for i in range(3):
        part = table.slice(bounds[i], bounds[i + 1] - bounds[i])
        pq.write_table(part, path / f"part-{i}.parquet", row_group_size=700)
    plan = CountPlan("label", ("score",), buckets, ())
    options = RefineOptions(**opts)
    with spark_conf(spark__sql__files__maxPartitionBytes="20k"):  # several tasks
        df = spark.read.parquet(str(path))
        direct = arrow_reader(spark, df, plan, InputConfig(path=str(path), reader="arrow"))
        reader = dataclasses.replace(exact_reader(direct, plan, options), transport=transport)
        tables = count_tables(df, plan, reader)
        try:
            counts = tables.groups(plan)[("score", ALL_ROWS)]
        finally:
            tables.release()
        flat = refine_histogram(df, plan, "score", counts, options, reader=reader)
    return flat, {m.metric: m.value for m in exact_auc_metrics(flat)}


ONE_READ_CASES = ["all_ties", "last_bit", "mixed", "ctr", "float32", "float32_as_float64", "widths"]


def mixed_widths(seed: int = 7) -> tuple[list, np.ndarray]:
    """Labels and float64 scores: the first 3000 rows float32 values (those of
    :func:`float32_adversarial`: ties, adjacent float32 values, 0, -0, the smallest
    float32, 1), the others half float32 values, half one float64 ulp above one, with
    float64 subnormals, -0.0 and float64 neighbours of 100 buckets' edges."""
    label, s32 = float32_adversarial(seed)
    s = s32.astype(np.float64)
    rng = np.random.default_rng(seed)
    tail = s[3000:]
    s[3000:] = np.where(rng.random(tail.size) < 0.5, tail, np.nextafter(tail, 1.0))
    s[3000:3005] = 5e-324
    s[3005:3010] = -0.0
    edges = rng.integers(1, 100, 100) / 100
    s[3010:3110] = np.nextafter(edges, rng.choice([0.0, 1.0], 100))
    return label, s


def one_read_case(kind: str) -> tuple[list, list, int, object]:
    """Labels, scores, buckets and the stored score type of a one-read case."""
    if kind == "ctr":
        y, s = ctr_like(30_000, seed=5)
        return y.tolist(), s.tolist(), 64, None
    if kind in ("float32", "float32_as_float64"):
        label, s32 = float32_adversarial()
        stored = pa.float32() if kind == "float32" else None
        return label, s32.astype(np.float64).tolist(), 100, stored
    if kind == "widths":
        label, s = mixed_widths()
        return label, s.tolist(), 100, None
    label, score = adversarial(kind, seed=8)
    return label, score, 16, None


@pytest.mark.parametrize(
    ("kind", "transport"),
    [(kind, "files") for kind in ONE_READ_CASES]
    + [("mixed", "shuffle"), ("float32", "shuffle"), ("last_bit", "shuffle")]
    + [("float32_as_float64", "shuffle"), ("widths", "shuffle")],
)
def test_one_read_gives_the_two_read_bins_and_scikit_learn(
    spark, spark_conf, tmp_path, kind, transport
):
    """The count pass ships the rows, its reducers sum every bucket: one read, and the
    bins the two-read numpy reference gives, bit for bit (float32 keys for a float32
    column), equal to scikit-learn; through files (local Spark) and through PySpark's
    shuffle (any cluster), with reducers that sort and (``last_bit``, ``all_ties``: keys
    spanning few values) reducers that count per value. A float64 column of float32
    values (``float32_as_float64``: every batch ships 4-byte keys) and one whose batches
    mix them with float64 values (``widths``: parts receive 4- and 8-byte chunks) give
    the 8-byte two-read bins, bit for bit."""
    label, score, buckets, score_type = one_read_case(kind)
    flat, metrics = shipped_from_files(
        spark, spark_conf, tmp_path, label, score, buckets, score_type, transport
    )
    reference = refine_arrays(label, score, buckets, narrow=score_type is not None)
    assert flat.passes == 1 and reference.passes == 2
    for field in BIN_FIELDS:
        assert np.array_equal(getattr(flat, field), getattr(reference, field)), field
    y, s, _ = valid_rows(label, score)
    assert metrics["roc_auc_error_bound"] == 0.0 and flat.ap_exact
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=TOL, rel=0)
    assert metrics["pr_auc"] == pytest.approx(average_precision_score(y, s), abs=TOL, rel=0)


@pytest.mark.parametrize("transport", ["files", "shuffle"])
def test_one_read_falls_back_to_two_reads_when_a_part_overflows(
    spark, spark_conf, tmp_path, transport
):
    """Parts cut from a sample: a part of more than 4 · part_rows rows is let go of and
    the sort pass reads again (two reads), with the same bins."""
    label, score, buckets, _ = one_read_case("ctr")
    flat, metrics = shipped_from_files(
        spark, spark_conf, tmp_path, label, score, buckets, transport=transport, part_rows=500
    )
    reference = refine_arrays(label, score, buckets, options=RefineOptions(part_rows=500))
    assert flat.passes == 2
    for field in BIN_FIELDS:
        assert np.array_equal(getattr(flat, field), getattr(reference, field)), field
    y, s, _ = valid_rows(label, score)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=TOL, rel=0)


def test_one_read_with_a_tolerance_sorts_what_two_reads_sort(spark, spark_conf, tmp_path):
    label, score, buckets, _ = one_read_case("ctr")
    options = {"tolerance": 1e-4, "refine_ap": False}
    flat, metrics = shipped_from_files(
        spark, spark_conf, tmp_path, label, score, buckets, **options
    )
    reference = refine_arrays(label, score, buckets, options=RefineOptions(**options))
    assert flat.passes == 1 and 0 < reference.resolved.sum() < buckets
    for field in BIN_FIELDS:
        assert np.array_equal(getattr(flat, field), getattr(reference, field)), field
    y, s, _ = valid_rows(label, score)
    bound = metrics["roc_auc_error_bound"]
    assert 0 < bound <= 1e-4
    assert abs(metrics["roc_auc"] - roc_auc_score(y, s)) <= bound + 1e-12


@pytest.mark.parametrize("parts", [1, 2, 5, 13])
def test_shipped_parts_in_numpy_give_the_two_read_bins(parts):
    """:func:`refine_shipped_arrays` (parts cut at sampled buckets, sums from
    ``part_sums`` with the counts above each part) against :func:`refine_arrays`, bit for
    bit, and scikit-learn."""
    from tally.kernels.buckets import bucket_of
    from tally.kernels.exact_sort import bucket_parts
    from tally.metrics.exact import refine_shipped_arrays

    for kind in ONE_READ_CASES:
        label, score, buckets, score_type = one_read_case(kind)
        narrow = score_type is not None
        y, s, _ = valid_rows(label, score)
        start = bucket_parts(bucket_of(s[::7], buckets), buckets, parts, 1.0 + 24 * y[::7])
        assert start[0] == 0 and start[-1] == buckets and np.all(np.diff(start) > 0)
        flat = refine_shipped_arrays(label, score, buckets, start, narrow=narrow)
        reference = refine_arrays(label, score, buckets, narrow=narrow)
        for field in BIN_FIELDS:
            assert np.array_equal(getattr(flat, field), getattr(reference, field)), (kind, field)
        metrics = {m.metric: m.value for m in exact_auc_metrics(flat)}
        assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=TOL, rel=0), kind


@pytest.mark.parametrize("stored", [pa.float32(), pa.float64()])
def test_packed_rows_equal_valid_rows_packed(stored):
    """The shortcut of a batch without problems (keys from the stored scores) gives
    what the checked path gives: ``valid_rows``, ``pack``; a batch with an invalid row
    takes the checked path."""
    from tally.kernels.binary import valid_rows as kernel_valid_rows
    from tally.kernels.exact_sort import pack, score_keys
    from tally.spark.readers.arrow.refine import packed_rows

    label, s32 = float32_adversarial()
    narrow = stored == pa.float32()
    _, widths = mixed_widths()
    for values, four in ((s32.astype(np.float64), True), (widths, narrow)):
        scores = pa.array(values).cast(stored, safe=False)
        for labels in (pa.array(label, pa.int8()), pa.array(np.array(label) == 1)):
            got_packed = packed_rows(labels, scores, narrow)
            positive, s, _ = kernel_valid_rows(labels, scores, None)
            # float32 keys for float32 values (a float64 column's too), else float64's
            assert got_packed.dtype == (np.uint32 if four else np.uint64)
            assert np.array_equal(got_packed, pack(score_keys(s, four), positive))
    bad = pa.array([0.5, 1.5, 0.25, float("nan")]).cast(stored)
    packed = packed_rows(pa.array([1, 0, 0, 1], pa.int8()), bad, narrow)
    assert np.array_equal(packed >> packed.dtype.type(1), score_keys(np.array([0.5, 0.25]), True))
    assert np.array_equal(packed & packed.dtype.type(1), [1, 0])
    nulls = pa.array([0.5, None, 0.1 + 2**-40]).cast(stored, safe=False)
    packed = packed_rows(pa.array([1, 0, 0], pa.int8()), nulls, narrow)
    assert packed.dtype == (np.uint32 if narrow else np.uint64)


def test_float32_keys_of_float64_scores_give_the_8_byte_sums_bit_for_bit(monkeypatch):
    """A float64 column's batches of float32 values ship 4-byte keys (``shipped_keys``);
    a part summed from them alone, or from them mixed with 8-byte chunks (``widen``),
    gives every field of the sums of its rows' 8-byte keys, bit for bit, whether it
    counts per value or sorts: float32 values with ties, runs of adjacent float32
    values, 0, -0, the smallest float32, 1; float64 subnormals, -0.0 and edge
    neighbours in the 8-byte batches."""
    from tally.kernels import exact_sort
    from tally.kernels.buckets import bucket_of
    from tally.kernels.exact_sort import Above, BinSums, pack, part_sums, score_keys, widen
    from tally.spark.readers.arrow.refine import shipped_keys

    label, s = mixed_widths()
    y = np.asarray(label) == 1
    wide = pack(score_keys(s, False), y)
    four = s[:3000]
    assert shipped_keys(four, False).dtype == np.uint32
    assert np.array_equal(widen(pack(shipped_keys(four, False), y[:3000])), wide[:3000])
    assert shipped_keys(np.r_[0.5, 5e-324], False).dtype == np.uint64
    assert shipped_keys(np.r_[0.5, 0.1], False).dtype == np.uint64
    assert shipped_keys(np.r_[0.5, np.float32(1e-45), -0.0, 1.0], False).dtype == np.uint32
    buckets = 100
    bucket = bucket_of(s, buckets)
    cuts = [0, 1500, 2990, 3500, 5000]
    for dense in (True, False):
        if not dense:
            monkeypatch.setattr(exact_sort, "DENSE_SLOTS", 0)
        for start, end in ((0, buckets), (0, 3), (3, 40), (40, buckets)):
            inside = (bucket >= start) & (bucket < end)
            above = Above(int((y & (bucket >= end)).sum()), int((~y & (bucket >= end)).sum()))
            expected = part_sums(wide[inside], buckets, start, end, above, False)
            rows = np.flatnonzero(inside)  # batches of rows 0-1500, 1500-2990 (float32 values), …
            batches = [rows[(rows >= a) & (rows < b)] for a, b in itertools.pairwise(cuts)]
            narrow_only = [
                pack(
                    shipped_keys(s[b][s[b] == s[b].astype(np.float32)], False),
                    y[b][s[b] == s[b].astype(np.float32)],
                )
                for b in batches
            ]
            mixed = [pack(shipped_keys(s[b], False), y[b]) for b in batches]
            assert {c.dtype for c in mixed if c.size} == {np.dtype(np.uint32), np.dtype(np.uint64)}
            exact32 = inside & (s == s.astype(np.float32))
            only32 = part_sums(wide[exact32], buckets, start, end, above, False)
            for got, want in (
                (part_sums(mixed, buckets, start, end, above, False), expected),
                (part_sums(narrow_only, buckets, start, end, above, False), only32),
            ):
                for field in BinSums.__dataclass_fields__:
                    a, b = getattr(got, field), getattr(want, field)
                    assert np.array_equal(a, b, equal_nan=True), (dense, start, field)
                    assert a.dtype == b.dtype, field


def test_parts_are_halved_through_files_only_where_rows_are_grouped_by_a_sort():
    """Parts of about ``2 · part_rows`` rows, a multiple of the parallelism; through
    files, where that gives more parts than are grouped by masks, parts of about
    ``part_rows`` (a counting sort groups any number alike); through the shuffle
    (each part a Spark task) never."""
    from tally.kernels.exact_sort import MASKED_PARTS
    from tally.spark.readers.arrow.refine import part_count

    rows_per = 1 << 23
    assert part_count(20e6, 2, rows_per, "files") == 2  # 20M: two parts, masks
    assert part_count(1e9, 2, rows_per, "shuffle") == 60
    assert part_count(1e9, 2, rows_per, "files") == 120
    at_masks = MASKED_PARTS * 2 * rows_per  # the most rows grouped by masks
    assert part_count(at_masks, 2, rows_per, "files") == MASKED_PARTS
    assert part_count(at_masks + 1, 2, rows_per, "shuffle") == MASKED_PARTS + 2
    assert part_count(at_masks + 1, 2, rows_per, "files") == 2 * MASKED_PARTS + 2
    assert part_count(10, 4, rows_per, "files") == 4  # at least one part a thread


@pytest.mark.parametrize("stored", [pa.float32(), pa.float64()])
def test_two_parts_placed_by_one_comparison_as_by_their_buckets(stored):
    """With two parts the count pass places each packed row by one comparison with
    ``upper_part_start`` instead of its bucket: on scores at, just below and just above
    the cut's edge ``c / B`` (float32 and float64 neighbours, ``B`` a power of two or
    not) and the adversarial float32 scores, every row lands in the part of its
    ``bucket_of`` bucket, and ``add_halves`` groups them as ``add_packed`` does."""
    from tally.kernels.buckets import bucket_of
    from tally.kernels.exact_sort import PartRows
    from tally.metrics.exact import shipped_layout
    from tally.spark.readers.arrow.refine import packed_rows, upper_part_start

    narrow = stored == pa.float32()
    _, adversarial = float32_adversarial()
    for buckets in (3, 10, 64, 100, 1 << 16):
        for cut in sorted({1, buckets // 3 or 1, buckets // 2, buckets - 1}):
            edge = cut / buckets
            near = [edge, np.nextafter(edge, 0), np.nextafter(edge, 1)]
            near32 = [np.float32(edge), np.nextafter(np.float32(edge), np.float32(0))]
            near32 += [np.nextafter(np.float32(edge), np.float32(1))]
            float32_values = np.r_[np.array(near32, np.float64), adversarial, 0.0, 1.0]
            # float64 neighbours (8-byte keys), float32 values alone (4-byte keys)
            for s in (np.r_[near, float32_values], float32_values):
                scores = pa.array(s).cast(stored, safe=False)
                y = pa.array(np.arange(s.size) % 2, pa.int8())
                packed = packed_rows(y, scores, narrow)
                layout = shipped_layout(np.array([0, cut, buckets]), narrow)
                upper = upper_part_start(layout, buckets, packed.dtype == np.uint32)
                assert upper is not None
                valid = scores.to_numpy(zero_copy_only=False).astype(np.float64)
                valid = valid[(valid >= 0) & (valid <= 1)]
                expected = layout.parts_of(bucket_of(valid, buckets))
                got = packed >= packed.dtype.type(upper)
                assert np.array_equal(got, expected == 1), (buckets, cut)
                halves, by_part = PartRows(layout), PartRows(layout)
                halves.add_halves(packed, got)
                by_part.add_packed(expected, packed, None)
                assert [(k, c[0].tolist()) for k, c in halves.chunks()] == [
                    (k, c[0].tolist()) for k, c in by_part.chunks()
                ]
    assert upper_part_start(shipped_layout(np.array([0, 1, 2, 4]), narrow), 4) is None


@pytest.mark.parametrize("stored", [pa.float32(), pa.float64()])
def test_many_parts_placed_by_their_keys_as_by_their_buckets(stored):
    """With more than two parts the count pass places each packed row by its key
    (``KeyParts``: a table of the key's top bits, cells that a part starts inside
    searched): on scores at, just below and just above every cut's edge (float32 and
    float64 neighbours, ``B`` a power of two or not, cuts one bucket apart whose edges
    round to the same float32) and the adversarial scores, every row lands in the part
    of its ``bucket_of`` bucket, and ``add_placed`` groups each part's rows in their
    order (by masks up to ``MASKED_PARTS`` parts, else by a stable sort)."""
    from tally.kernels.buckets import bucket_of
    from tally.kernels.exact_sort import KeyParts, PartRows
    from tally.metrics.exact import shipped_layout
    from tally.spark.readers.arrow.refine import key_parts, packed_rows

    narrow = stored == pa.float32()
    _, adversarial = float32_adversarial()
    _, widths = mixed_widths()
    rng = np.random.default_rng(3)
    for buckets, drawn in itertools.product((7, 100, 1 << 16, 10**6 + 7), (0, 40)):
        inner = np.unique(rng.integers(1, buckets, drawn))  # 6-7 parts (masks) or ~46
        cuts = np.unique(np.r_[inner, 1, 2, 3, buckets - 2, buckets - 1])
        part_start = np.r_[0, cuts, buckets]
        layout = shipped_layout(part_start, narrow)
        placing = key_parts(layout, buckets)
        assert placing is not None and sorted(placing) == ([4] if narrow else [4, 8])
        edge = cuts / buckets
        near = np.r_[edge, np.nextafter(edge, 0), np.nextafter(edge, 1)]
        edge32 = edge.astype(np.float32)
        below, above = np.nextafter(edge32, np.float32(0)), np.nextafter(edge32, np.float32(1))
        near32 = np.r_[edge32, below, above]
        float32_values = np.r_[near32.astype(np.float64), adversarial, 0.0, 1.0]
        for s in (np.r_[near, widths, float32_values], float32_values):
            scores = pa.array(rng.permutation(s)).cast(stored, safe=False)
            y = pa.array(rng.integers(0, 2, s.size), pa.int8())
            packed = packed_rows(y, scores, narrow)
            valid = scores.to_numpy(zero_copy_only=False).astype(np.float64)
            valid = valid[(valid >= 0) & (valid <= 1)]
            expected = layout.parts_of(bucket_of(valid, buckets))
            got = placing[packed.dtype.itemsize].part(packed)
            assert np.array_equal(got, expected), buckets
            placed = PartRows(layout)
            placed.add_placed(got, packed)
            runs = [(k, c[0].tolist()) for k, c in placed.chunks()]
            want = [(k, packed[expected == k].tolist()) for k in np.unique(expected)]
            assert runs == want, buckets
    # parts that start where the next does hold no row (edges rounding to one float32)
    for kind in (np.uint32, np.uint64):
        starts = np.array([6, 6, 7, 7, 7, 1 << 20], kind)
        rows = np.r_[np.arange(0, 40), 1 << 20, (1 << 20) - 1, 3 << 29].astype(kind)
        want = np.searchsorted(starts, rows, side="right")
        assert KeyParts.of(starts).part(rows).tolist() == want.tolist()
    one = shipped_layout(np.array([0, 100]), narrow)
    placing = key_parts(one, 100)
    packed = packed_rows(pa.array([0, 1], pa.int8()), pa.array([0.0, 1.0]).cast(stored), narrow)
    assert placing is not None and placing[4].part(packed).tolist() == [0, 0]


@pytest.mark.parametrize("stored", [pa.float32(), pa.float64()])
def test_rows_packed_and_placed_in_scratch_outlive_the_next_batch(stored):
    """A map task packs and places each batch in arrays it reuses (``Scratch``); the
    rows it keeps are its own: batches that all land in one part, in two parts (by
    one comparison) and in many (by key), packed into one scratch, keep the rows of
    each batch after the next one is packed, as fresh arrays would."""
    from tally.kernels.buckets import bucket_of
    from tally.kernels.exact_sort import PartRows, Scratch
    from tally.metrics.exact import shipped_layout
    from tally.spark.readers.arrow.refine import key_parts, packed_rows, upper_part_start

    narrow = stored == pa.float32()
    rng = np.random.default_rng(8)
    buckets = 1000
    batches = [rng.random(3000) * 0.01, rng.random(3000) * 0.5, rng.random(2000)]
    for part_start in ([0, buckets], [0, 300, buckets], [0, 5, 100, 300, 301, 800, buckets],
                       np.r_[0, np.arange(50, buckets, 40), buckets]):  # fmt: skip
        layout = shipped_layout(np.array(part_start), narrow)
        placing, scratch = key_parts(layout, buckets), Scratch()
        kept, want = PartRows(layout), []
        for s in batches:
            y = pa.array(rng.integers(0, 2, s.size), pa.int8())
            scores = pa.array(s).cast(stored, safe=False)
            packed = packed_rows(y, scores, narrow, scratch)
            fresh = packed_rows(y, scores, narrow)
            assert np.array_equal(packed, fresh) and packed.dtype == fresh.dtype
            part = layout.parts_of(bucket_of(scores.to_numpy().astype(np.float64), buckets))
            want += [(k, fresh[part == k].tolist()) for k in np.unique(part)]
            if placing is None:
                cut = upper_part_start(layout, buckets, packed.dtype == np.uint32)
                kept.add_halves(packed, packed >= packed.dtype.type(cut), scratch)
            else:
                kept.add_placed(
                    placing[packed.dtype.itemsize].part(packed, scratch), packed, scratch
                )
        assert [(k, c[0].tolist()) for k, c in kept.chunks()] == want, part_start


def test_parts_grouped_by_a_stable_sort_keep_each_part_in_order():
    """More parts than ``MASKED_PARTS`` are grouped by a stable sort of the part
    numbers (rows not sorted, part −1, dropped); each part keeps its rows, and its
    weights, in their order: the masks' grouping, for 9 and for 300 parts."""
    from tally.kernels.exact_sort import MASKED_PARTS, PartRows, SortLayout

    rng = np.random.default_rng(4)
    for parts in (MASKED_PARTS + 1, 300):
        part = rng.integers(-1, parts, 50_000).astype(np.int32)
        packed = rng.integers(0, 1 << 31, 50_000).astype(np.uint32)
        w = rng.random(50_000)
        rows = PartRows(SortLayout(0, np.arange(parts, dtype=np.int32), parts, True, True))
        rows.add_packed(part, packed, w)
        got = [(k, c[0].tolist(), c[1].tolist()) for k, c in rows.chunks()]
        want = [
            (k, packed[part == k].tolist(), w[part == k].tolist())
            for k in range(parts)
            if np.any(part == k)
        ]
        assert got == want, parts


def test_bucket_parts_cut_by_weighted_shares():
    """Cuts where the weighted sample reaches each share; never an empty part."""
    from tally.kernels.exact_sort import bucket_parts

    sample = np.array([0, 0, 1, 1, 2, 2, 3, 3, 7, 7])
    assert bucket_parts(sample, 8, 2).tolist() == [0, 2, 8]
    weights = np.array([1, 1, 1, 1, 1, 1, 1, 1, 10, 10])  # the last two weigh 20 of 28
    assert bucket_parts(sample, 8, 2, weights).tolist() == [0, 7, 8]
    assert bucket_parts(np.zeros(50, np.int64), 8, 4).tolist() == [0, 1, 8]
    assert bucket_parts(np.zeros(0, np.int64), 8, 4).tolist() == [0, 2, 4, 6, 8]
    assert bucket_parts(sample, 1, 4).tolist() == [0, 1]


@pytest.mark.parametrize("transport", ["files", "shuffle"])
def test_shipping_count_pass_counts_as_the_arrow_reader_does(
    spark, spark_conf, tmp_path, transport
):
    """Two score columns (float32 and float64), a slice, invalid rows: the count pass
    that ships the rows (through files or PySpark's shuffle) gives every group the arrow
    reader's counts, field for field (3 tasks: the tasks' float sums added in the same
    order), and each column's exact AUC in one read equals scikit-learn's."""
    import dataclasses

    import pyarrow.parquet as pq

    from tally.config import InputConfig
    from tally.plan import ALL_ROWS
    from tally.spark.count import arrow_reader, count_tables
    from tally.spark.refine import exact_reader

    y, s = ctr_like(20_000, seed=11)
    rng = np.random.default_rng(11)
    t = np.clip(s + rng.normal(0, 0.01, s.size), 0, 1)
    label = y.tolist()
    label[:3] = [None, 2.0, 0.0]
    s_list = s.tolist()
    s_list[3:6] = [float("nan"), -0.5, None]
    table = pa.table(
        {
            "label": pa.array(label, pa.float64(), from_pandas=False),
            "a": pa.array(s_list, pa.float64(), from_pandas=False).cast(pa.float32()),
            "b": pa.array(t, pa.float64()),
            "country": pa.array(rng.choice(["de", "fr", "us"], s.size)),
        }
    )
    path = tmp_path / "two"
    path.mkdir()
    for i, at in enumerate(range(0, table.num_rows, 7000)):
        pq.write_table(table.slice(at, 7000), path / f"part-{i}.parquet", row_group_size=3000)
    plan = CountPlan("label", ("a", "b"), 64, (0.02, 0.5), slices=(("country",),))
    options = RefineOptions()
    with spark_conf(spark__sql__files__maxPartitionBytes="1g"):  # a task per file
        df = spark.read.parquet(str(path))
        plain = arrow_reader(spark, df, plan, InputConfig(path=str(path), reader="arrow"))
        shipping = dataclasses.replace(exact_reader(plain, plan, options), transport=transport)
        assert type(shipping) is not type(plain) and len(plain.tasks) <= 3
        groups = []
        for reader in (plain, shipping):
            tables = count_tables(df, plan, reader)
            try:
                groups.append(tables.groups(plan))
            finally:
                tables.release()
        flats = {
            c: refine_histogram(df, plan, c, groups[1][(c, ALL_ROWS)], options, reader=shipping)
            for c in ("a", "b")
        }
    assert groups[0].keys() == groups[1].keys() and len(groups[0]) == 8
    for key, counts in groups[0].items():
        other = dataclasses.asdict(groups[1][key])
        for name, value in dataclasses.asdict(counts).items():
            assert np.array_equal(np.asarray(value), np.asarray(other[name])), (key, name)
    a32 = np.array([np.nan if v is None else v for v in s_list], np.float32)
    for c, score in (("a", a32.astype(np.float64)), ("b", t)):
        flat = flats[c]
        assert flat.passes == 1 and flat.auc_bound == 0.0 and flat.ap_exact
        yv, sv, _ = valid_rows(label, score.tolist())
        metrics = {m.metric: m.value for m in exact_auc_metrics(flat)}
        assert metrics["roc_auc"] == pytest.approx(roc_auc_score(yv, sv), abs=TOL, rel=0)
        expected_ap = average_precision_score(yv, sv)
        assert metrics["pr_auc"] == pytest.approx(expected_ap, abs=TOL, rel=0)


def test_files_transport_leaves_no_file_and_auto_follows_the_master(
    spark, spark_conf, tmp_path, monkeypatch
):
    """The files transport writes the rows in a folder of its own and removes it after;
    ``auto`` takes files on a local master; an unknown transport is refused."""
    import os
    import tempfile

    import tally.spark.readers.arrow.refine as refine_module

    made: list[str] = []
    original = tempfile.mkdtemp

    def mkdtemp(**kwargs):
        made.append(original(**kwargs))
        return made[-1]

    monkeypatch.setattr(refine_module.tempfile, "mkdtemp", mkdtemp)
    label, score, buckets, score_type = one_read_case("float32")
    flat, _ = shipped_from_files(spark, spark_conf, tmp_path, label, score, buckets, score_type)
    assert flat.passes == 1 and len(made) == 1 and not os.path.exists(made[0])
    assert spark.sparkContext.master.startswith("local")
    assert refine_module.transport_of(spark, "auto") == "files"
    assert refine_module.transport_of(spark, "shuffle") == "shuffle"
    with pytest.raises(ValueError, match="transport"):
        refine_module.transport_of(spark, "carrier pigeon")


@pytest.mark.parametrize("dense", [True, False])
def test_a_reducer_reusing_its_buffers_from_part_to_part_sums_each_as_fresh(monkeypatch, dense):
    """A reducer's thread sums its parts one after another in one ``Scratch``: each
    part's sums are those of fresh buffers, whether a larger part came before it (its
    rows left in the buffers) or after, counted per value or sorted (``split_rows``)."""
    from tally.kernels import exact_sort
    from tally.kernels.buckets import bucket_of
    from tally.kernels.exact_sort import (
        Above,
        BinSums,
        Scratch,
        pack,
        part_sums,
        score_keys,
        value_counts,
    )

    if not dense:
        monkeypatch.setattr(exact_sort, "DENSE_SLOTS", 0)
    rng = np.random.default_rng(5)
    buckets = 50
    parts = []
    # scores in [0.26, 0.38): float32 keys of one power of two, few enough to count
    for rows, start, end in ((9000, 13, 14), (1500, 14, 16), (6000, 16, 19)):
        s = rng.uniform(start / buckets, end / buckets, rows).astype(np.float32)
        s[: rows // 3] = s[rows // 3 : 2 * (rows // 3)]  # ties
        assert ((bucket_of(s, buckets) >= start) & (bucket_of(s, buckets) < end)).all()
        y = rng.random(rows) < 0.2
        packed = pack(score_keys(s, True), y)
        parts.append(([packed[: rows // 2], packed[rows // 2 :]], start, end))
        assert (value_counts([packed], np.zeros(1, np.uint32)) is not None) == dense
    scratch = Scratch()
    for chunks, start, end in parts + parts[::-1]:
        above = Above(7, 40)
        fresh = part_sums(chunks, buckets, start, end, above, True)
        reused = part_sums(chunks, buckets, start, end, above, True, scratch)
        for field in BinSums.__dataclass_fields__:
            a, b = getattr(reused, field), getattr(fresh, field)
            assert np.array_equal(a, b, equal_nan=True), (start, field)
        assert int(reused.rows.sum()) == sum(c.shape[0] for c in chunks)


def test_a_reducer_sums_its_files_and_removes_only_them(tmp_path):
    """A reducer of the files transport sums the files every task wrote for its part
    (4- and 8-byte keys, a task that wrote none) as one array of their rows, and
    removes those files; another part's files stay for their own reducer."""
    import tally.spark.readers.arrow.refine as refine_module
    from tally.kernels.buckets import bucket_of
    from tally.kernels.exact_sort import Above, BinSums, pack, part_sums, score_keys

    rng = np.random.default_rng(11)
    s = np.round(rng.beta(2, 8, 3000), 3)
    s[:1500] = s[:1500].astype(np.float32)  # float32 values (ties): 4-byte keys ship
    y = rng.random(3000) < 0.3
    buckets, cut = 20, 4  # part 0: buckets 0-3, part 1: buckets 4-19
    part_start = np.array([0, cut, buckets])
    upper = bucket_of(s, buckets) >= cut
    above = Above(int((y & upper).sum()), int((~y & upper).sum()))
    low_rows = np.flatnonzero(~upper)
    first = low_rows[low_rows < 1500]
    narrow_keys = pack(score_keys(s[first], True), y[first])
    rest = low_rows[low_rows >= 1500]
    wide_keys = pack(score_keys(s[rest], False), y[rest])
    narrow_keys.tofile(tmp_path / "0-0.4")  # task 0: float32 values, 4-byte keys
    wide_keys.tofile(tmp_path / "0-2.8")  # task 2: 8-byte keys; task 1 wrote nothing
    pack(score_keys(s[upper], False), y[upper]).tofile(tmp_path / "1-0.8")
    got = refine_module._read_part(
        0,
        folder=str(tmp_path),
        tasks=3,
        parts=[(0, part_start, False)],
        buckets=buckets,
        above={0: above},
        sort=True,
    )
    every = pack(score_keys(s[low_rows], False), y[low_rows])
    want = part_sums(every, buckets, 0, cut, above, False)
    for field in BinSums.__dataclass_fields__:
        assert np.array_equal(getattr(got, field), getattr(want, field), equal_nan=True), field
    assert int(got.rows.sum()) == low_rows.shape[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1-0.8"]


@pytest.mark.parametrize("dtype", [np.uint32, np.uint64])
def test_a_part_file_is_mapped_as_written(monkeypatch, tmp_path, dtype):
    """A reducer of the files transport maps each file a map task wrote: the same rows,
    read-only (nothing may write through to the page cache); an empty file is no rows;
    without POSIX ``mmap`` flags (Windows) the file is read into an array."""
    import tally.spark.readers.arrow.refine as refine_module

    rows = np.random.default_rng(7).integers(0, 2**31, 1001).astype(dtype)
    path = tmp_path / "0-0.bin"
    rows.tofile(path)
    mapped = refine_module._mapped(str(path), dtype)
    assert mapped.dtype == dtype and np.array_equal(mapped, rows)
    assert not mapped.flags.writeable
    (tmp_path / "empty.bin").write_bytes(b"")
    empty = refine_module._mapped(str(tmp_path / "empty.bin"), dtype)
    assert empty.dtype == dtype and empty.shape == (0,)
    monkeypatch.delattr(refine_module.mmap, "MAP_SHARED")
    read = refine_module._mapped(str(path), dtype)
    assert read.dtype == dtype and np.array_equal(read, rows)
