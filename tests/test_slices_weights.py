"""Slices, weights and several score columns in one counting pass (issue 4).

Every expectation comes from an independent reference on the same rows: the numpy
counter :func:`tally.counts.count_binary` on the rows filtered the way a slice
filters them, and scikit-learn (with ``sample_weight`` for weights). Data goes
through Parquet written by pyarrow, so nulls stay nulls and NaNs stay NaNs.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import functions as F
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    matthews_corrcoef,
    precision_score,
    recall_score,
    roc_auc_score,
)

from helpers import is_valid, write_parquet
from tally.counts import BinaryCounts, count_binary
from tally.metrics.binary import binary_metrics
from tally.plan import ALL_ROWS, OTHER_VALUE, CountPlan
from tally.spark.count import collect_count_groups, count_table, count_tables

BUCKETS = 512
THRESHOLDS = (0.3, 0.5, 0.8)
SPECS = (("country",), ("country", "device"), ("hour",))


def floats(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """A double column; rows where ``null`` is true are nulls (NaN elsewhere stays NaN)."""
    return pa.array(np.asarray(values, np.float64), mask=null)


def metric_values(counts: BinaryCounts) -> dict[tuple[str, float | None], float | None]:
    return {(m.metric, m.threshold): m.value for m in binary_metrics(counts)}


def slice_label(spec: tuple[str, ...], values: tuple) -> str:
    """The label Tally documents: ``col=value/col=value``, a null value reads ``null``."""
    return "/".join(f"{c}={'null' if v is None else v}" for c, v in zip(spec, values, strict=True))


def row_labels(columns: dict[str, list], spec: tuple[str, ...]) -> np.ndarray:
    rows = zip(*(columns[c] for c in spec), strict=True)
    return np.array([slice_label(spec, values) for values in rows])


def check_against_sklearn(
    counts: BinaryCounts, y: np.ndarray, s: np.ndarray, w: np.ndarray | None
) -> None:
    """tp/fp at each threshold, roc_auc within its bound and log_loss, on the valid rows."""
    valid = is_valid(y, s, w)
    y, s = y[valid].astype(np.int64), s[valid]
    w = None if w is None else w[valid]
    got = metric_values(counts)
    assert got[("count", None)] == valid.sum()
    for t in THRESHOLDS:
        _, fp, _, tp = confusion_matrix(y, s >= t, labels=[0, 1], sample_weight=w).ravel()
        assert got[("tp", t)] == pytest.approx(tp, rel=1e-9, abs=1e-9)
        assert got[("fp", t)] == pytest.approx(fp, rel=1e-9, abs=1e-9)
    if 0 < y.sum() < y.size:
        bound = got[("roc_auc_error_bound", None)]
        assert abs(got[("roc_auc", None)] - roc_auc_score(y, s, sample_weight=w)) <= bound + 1e-12
    if y.size:
        expected = log_loss(y, s, sample_weight=w, labels=[0, 1])
        assert got[("log_loss", None)] == pytest.approx(expected, rel=1e-9)


# --------------------------------------------------------------------------- slices


@pytest.fixture(scope="module")
def sliced(spark, tmp_path_factory):
    """12,000 rows: two scores, a weight, string and integer slice columns, nulls, bad rows."""
    rng = np.random.default_rng(2026)
    n = 12_000
    y = (rng.random(n) < 0.3).astype(np.float64)
    y[rng.random(n) < 0.01] = np.nan  # null labels
    s7 = np.clip(rng.normal(0.35 + 0.3 * np.nan_to_num(y), 0.2), 0.0, 1.0)
    s7[: n // 5] = np.round(s7[: n // 5], 2)  # real ties
    s7[n // 5 : n // 5 + 20] = 0.5  # exactly on a threshold
    s7[rng.random(n) < 0.01] = np.nan
    s7[rng.random(n) < 0.005] = 1.25
    s8 = np.clip(rng.normal(0.4 + 0.2 * np.nan_to_num(y), 0.25), 0.0, 1.0)
    w = rng.exponential(1.0, n)
    w[rng.random(n) < 0.05] = 0.0
    w[rng.choice(n, 40, replace=False)] = [-1.0] * 15 + [np.nan] * 10 + [np.inf] * 15
    country = list(rng.choice(["de", "fr", "us", "jp", "-"], n, p=[0.35, 0.25, 0.2, 0.15, 0.05]))
    country = [None if c == "-" else str(c) for c in country]
    device = [str(d) for d in rng.choice(["ios", "android", "web"], n)]
    hour = [None if rng.random() < 0.03 else int(h) for h in rng.integers(0, 6, n)]
    path = write_parquet(
        tmp_path_factory.mktemp("sliced") / "rows.parquet",
        {
            "label": floats(y, np.isnan(y)),
            "s7": floats(s7),
            "s8": floats(s8),
            "w": floats(w),
            "country": pa.array(country, pa.string()),
            "device": pa.array(device, pa.string()),
            "hour": pa.array(hour, pa.int32()),
        },
    )
    columns = {"country": country, "device": device, "hour": hour}
    return spark.read.parquet(path), {"y": y, "s7": s7, "s8": s8, "w": w}, columns


@pytest.mark.parametrize("weight", [None, "w"])
def test_every_slice_equals_evaluating_its_rows_alone(sliced, weight):
    df, arrays, columns = sliced
    plan = CountPlan(
        label="label",
        scores=("s7",),
        buckets=BUCKETS,
        thresholds=THRESHOLDS,
        weight=weight,
        slices=SPECS,
    )
    groups = collect_count_groups(count_table(df, plan), plan)
    y, s = arrays["y"], arrays["s7"]
    w = arrays["w"] if weight else None

    expected_masks = {ALL_ROWS: np.ones(y.size, bool)}
    for spec in SPECS:
        labels = row_labels(columns, spec)
        expected_masks.update({label: labels == label for label in np.unique(labels)})
    assert set(groups) == {("s7", label) for label in expected_masks}
    # the label format: col=value, joined with "/", null values read "null"
    assert {
        "country=null",
        "country=null/device=web",
        "hour=null",
        "hour=3",
        "country=de/device=ios",
    } <= {label for _, label in groups}

    for label, mask in expected_masks.items():
        counts = groups[("s7", label)]
        reference = count_binary(
            y[mask], s[mask], BUCKETS, THRESHOLDS, None if w is None else w[mask]
        )
        assert counts.same_counts(reference, rtol=1e-9), label
        assert counts.weighted == (weight is not None)
        check_against_sklearn(counts, y[mask], s[mask], None if w is None else w[mask])


@pytest.mark.parametrize("keep", [3, 4])
def test_rare_slice_values_merge_into_other(spark, tmp_path, keep):
    """``max_slices_per_spec`` keeps the most frequent values (ties: value ascending)."""
    rng = np.random.default_rng(keep)
    frequency = {"us": 500, "de": 300, "fr": 200, "jp": 100, "br": 100, "it": 100, None: 40}
    country = [c for c, k in frequency.items() for _ in range(k)]
    order = rng.permutation(len(country))
    country = [country[i] for i in order]
    n = len(country)
    device = [str(d) for d in rng.choice(["ios", "android", "web"], n)]
    y = (rng.random(n) < 0.4).astype(np.float64)
    s = np.round(np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1), 3)
    df = spark.read.parquet(
        write_parquet(
            tmp_path / "rows.parquet",
            {
                "label": floats(y),
                "s": floats(s),
                "country": pa.array(country, pa.string()),
                "device": pa.array(device, pa.string()),
            },
        )
    )
    specs = (("country",), ("country", "device"), ("device",))
    plan = CountPlan(
        label="label",
        scores=("s",),
        buckets=64,
        thresholds=(0.5,),
        slices=specs,
        max_slices_per_spec=keep,
    )
    tables = count_tables(df, plan)
    try:
        groups = collect_count_groups(tables.cells, plan)
        merged = {r["slice"]: r["merged_values"] for r in tables.merged_values.collect()}
    finally:
        tables.release()

    # the spelled-out rule on [country]: three values tie at 100 rows; "br" < "it" < "jp"
    kept_countries = {"us", "de", "fr"} | ({"br"} if keep == 4 else set())
    assert {label for _, label in groups if label.startswith("country=") and "/" not in label} == {
        f"country={c}" for c in kept_countries
    } | {"country=__other__"}

    columns = {"country": country, "device": device}
    expected_labels = {ALL_ROWS: np.full(n, ALL_ROWS)}
    expected_merged = {}
    for spec in specs:
        keys = list(zip(*(columns[c] for c in spec), strict=True))
        frequency_of = Counter(keys)
        ranked = sorted(
            frequency_of, key=lambda k: (-frequency_of[k], [(v is not None, v or "") for v in k])
        )
        top = set(ranked[:keep])
        other = slice_label(spec, (OTHER_VALUE,) * len(spec))
        expected_labels[spec] = np.array(
            [slice_label(spec, k) if k in top else other for k in keys]
        )
        if len(ranked) > keep:
            expected_merged[other] = len(ranked) - keep
    assert merged == expected_merged
    assert merged["country=__other__"] == 7 - keep  # null is a value like any other
    assert "device=__other__" not in merged  # 3 devices, nothing merged

    expected = {
        label: labels == label for labels in expected_labels.values() for label in np.unique(labels)
    }
    assert set(groups) == {("s", label) for label in expected}
    for label, mask in expected.items():
        assert groups[("s", label)].same_counts(
            count_binary(y[mask], s[mask], 64, (0.5,)), rtol=1e-9
        ), label

    # the same slices, whatever the partitioning (ties are not broken by arrival order)
    again = collect_count_groups(count_table(df.repartition(5), plan), plan)
    assert set(again) == set(groups)
    assert all(again[key].same_counts(groups[key], rtol=1e-9) for key in groups)


# --------------------------------------------------------------------------- weights


@pytest.fixture(scope="module")
def weighted(spark, tmp_path_factory):
    """6,000 rows; ``s_grid`` sits at bucket centres (one distinct score per bucket),
    ``s_raw`` is continuous; weights include 0 and every kind of invalid weight."""
    rng = np.random.default_rng(99)
    n, buckets = 6_000, 256
    y = (rng.random(n) < 0.4).astype(np.float64)
    raw = rng.normal(0.3 + 0.35 * y, 0.2)
    s_raw = np.clip(raw, 0.0, 1.0)
    s_grid = (np.clip(np.floor(raw * buckets), 0, buckets - 1) + 0.5) / buckets
    w = rng.gamma(2.0, 1.0, n)
    w[rng.random(n) < 0.05] = 0.0
    w[0:10] = -1.5  # invalid_weight
    w[10:20] = np.nan  # null_weight (NaN)
    w[20:30] = np.nan  # null_weight (written as null)
    w[30:40] = np.inf  # invalid_weight
    w[40:45] = -np.inf  # invalid_weight
    null = np.zeros(n, bool)
    null[20:30] = True
    path = write_parquet(
        tmp_path_factory.mktemp("weighted") / "rows.parquet",
        {
            "label": pa.array(y.astype(np.int64)),
            "s_raw": floats(s_raw),
            "s_grid": floats(s_grid),
            "w": floats(w, null),
        },
    )
    return spark.read.parquet(path), y, {"s_raw": s_raw, "s_grid": s_grid}, w, buckets


def test_a_hundred_thousand_slice_values_stay_bounded(spark, tmp_path):
    """10^5 distinct values of a slice column: the driver gets ``max_slices_per_spec`` + 2
    groups (ALL, the kept values, ``__other__``), whatever the number of values, and
    ``__other__`` holds exactly the rows of the values it merged."""
    rng = np.random.default_rng(11)
    values, keep = 100_000, 50
    n = 3 * values
    user = np.concatenate([np.arange(values), rng.integers(0, values, n - values)])
    y = (rng.random(n) < 0.3).astype(np.float64)
    s = np.round(np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1), 3)
    df = spark.read.parquet(
        write_parquet(
            tmp_path / "rows.parquet",
            {"label": floats(y), "s": floats(s), "user": pa.array(user.astype(str))},
        )
    )
    buckets = 16
    plan = CountPlan(
        label="label",
        scores=("s",),
        buckets=buckets,
        thresholds=(0.5,),
        slices=(("user",),),
        max_slices_per_spec=keep,
    )
    tables = count_tables(df, plan)
    try:
        cells = tables.cells.count()
        groups = collect_count_groups(tables.cells, plan)
        merged = {r["slice"]: r["merged_values"] for r in tables.merged_values.collect()}
    finally:
        tables.release()
    assert len(groups) == keep + 2
    assert cells <= (keep + 2) * (buckets * 2 + 8)  # B·(T+1) cells + invalid reasons
    assert merged == {"user=__other__": values - keep}
    frequency = Counter(user.tolist())
    kept = sorted(frequency, key=lambda u: (-frequency[u], str(u)))[:keep]
    kept_rows = sum(frequency[u] for u in kept)
    assert groups[("s", "user=__other__")].count == n - kept_rows
    assert {label for _, label in groups} == {ALL_ROWS, "user=__other__"} | {
        f"user={u}" for u in kept
    }


def test_weighted_counts_equal_the_numpy_reference(weighted):
    df, y, scores, w, buckets = weighted
    plan = CountPlan(
        label="label",
        scores=("s_raw", "s_grid"),
        buckets=buckets,
        thresholds=THRESHOLDS,
        weight="w",
    )
    groups = collect_count_groups(count_table(df, plan), plan)
    for name, s in scores.items():
        counts = groups[(name, ALL_ROWS)]
        assert counts.weighted
        assert counts.same_counts(count_binary(y, s, buckets, THRESHOLDS, weights=w), rtol=1e-9)
        assert counts.invalid["null_weight"] == 20  # null and NaN
        assert counts.invalid["invalid_weight"] == 25  # negative, +inf, -inf
        assert counts.invalid_rows == 45
        metrics = metric_values(counts)
        valid = is_valid(y, s, w)
        assert metrics[("count", None)] == valid.sum() == y.size - 45  # rows, not weights
        assert metrics[("positives", None)] == pytest.approx(np.sum(w[valid] * y[valid]), rel=1e-12)
        assert metrics[("negatives", None)] == pytest.approx(
            np.sum(w[valid] * (1 - y[valid])), rel=1e-12
        )


def test_weighted_metrics_match_scikit_learn_sample_weight(weighted):
    df, y, scores, w, buckets = weighted
    plan = CountPlan(
        label="label",
        scores=("s_raw", "s_grid"),
        buckets=buckets,
        thresholds=THRESHOLDS,
        weight="w",
    )
    groups = collect_count_groups(count_table(df, plan), plan)
    valid = is_valid(y, scores["s_raw"], w)
    yv, wv = y[valid].astype(np.int64), w[valid]
    assert (wv == 0).sum() > 100  # zero weights are valid rows
    for name, s in scores.items():
        sv = s[valid]
        got = metric_values(groups[(name, ALL_ROWS)])
        for t in THRESHOLDS:
            pred = (sv >= t).astype(np.int64)
            tn, fp, fn, tp = confusion_matrix(yv, pred, sample_weight=wv).ravel()
            expected = {
                "tp": tp,
                "fp": fp,
                "tn": tn,
                "fn": fn,
                "precision": precision_score(yv, pred, sample_weight=wv),
                "recall": recall_score(yv, pred, sample_weight=wv),
                "f1": f1_score(yv, pred, sample_weight=wv),
                "accuracy": accuracy_score(yv, pred, sample_weight=wv),
                "balanced_accuracy": balanced_accuracy_score(yv, pred, sample_weight=wv),
                "mcc": matthews_corrcoef(yv, pred, sample_weight=wv),
            }
            for metric, value in expected.items():
                assert got[(metric, t)] == pytest.approx(value, rel=1e-9), (name, metric, t)
        assert got[("log_loss", None)] == pytest.approx(
            log_loss(yv, sv, sample_weight=wv), rel=1e-9
        )
        assert got[("brier", None)] == pytest.approx(
            brier_score_loss(yv, sv, sample_weight=wv), rel=1e-9
        )
        auc = roc_auc_score(yv, sv, sample_weight=wv)
        assert abs(got[("roc_auc", None)] - auc) <= got[("roc_auc_error_bound", None)] + 1e-12
    # one distinct score per bucket: the bucketed curves are the exact ones
    got = metric_values(groups[("s_grid", ALL_ROWS)])
    sv = scores["s_grid"][valid]
    assert got[("roc_auc", None)] == pytest.approx(
        roc_auc_score(yv, sv, sample_weight=wv), rel=1e-9
    )
    assert got[("pr_auc", None)] == pytest.approx(
        average_precision_score(yv, sv, sample_weight=wv), rel=1e-9
    )


@pytest.mark.parametrize(
    ("arrow_type", "unit"), [(pa.float64(), 1e12), (pa.int64(), 10**15)], ids=["double", "long"]
)
def test_huge_weights_sum_as_floats_without_overflow(spark, tmp_path, arrow_type, unit):
    rng = np.random.default_rng(5)
    n = 10_000
    y = (rng.random(n) < 0.3).astype(np.int64)
    s = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0.0, 1.0)
    factor = rng.integers(1, 5, n)
    weights = factor * unit if arrow_type == pa.float64() else factor * np.int64(unit)
    df = spark.read.parquet(
        write_parquet(
            tmp_path / "rows.parquet",
            {
                "label": pa.array(y),
                "s": floats(s),
                "w": pa.array(weights, arrow_type),
            },
        )
    )
    plan = CountPlan(
        label="label", scores=("s",), buckets=BUCKETS, thresholds=THRESHOLDS, weight="w"
    )
    counts = collect_count_groups(count_table(df, plan), plan)[("s", ALL_ROWS)]
    w = weights.astype(np.float64)  # scikit-learn would sum int64 weights as int64 and wrap
    if arrow_type == pa.int64():
        assert counts.total_weight > 2**63  # past the long range: the sums must be floats
    assert counts.weighted and counts.count == n
    got = metric_values(counts)
    assert all(v is None or np.isfinite(v) for v in got.values())
    assert got[("positives", None)] == pytest.approx(np.sum(w * y), rel=1e-12)
    for t in THRESHOLDS:
        tn, fp, fn, tp = confusion_matrix(y, s >= t, sample_weight=w).ravel()
        assert [got[(m, t)] for m in ("tp", "fp", "tn", "fn")] == pytest.approx(
            [tp, fp, tn, fn], rel=1e-9
        )
        assert got[("accuracy", t)] == pytest.approx(
            accuracy_score(y, s >= t, sample_weight=w), rel=1e-9
        )
    assert got[("log_loss", None)] == pytest.approx(log_loss(y, s, sample_weight=w), rel=1e-9)
    assert got[("brier", None)] == pytest.approx(brier_score_loss(y, s, sample_weight=w), rel=1e-9)
    bound = got[("roc_auc_error_bound", None)]
    assert abs(got[("roc_auc", None)] - roc_auc_score(y, s, sample_weight=w)) <= bound + 1e-12


def test_weighted_fn_is_zero_when_every_positive_is_predicted_positive(spark, tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    y = (rng.random(n) < 0.5).astype(np.int64)
    s = np.where(y == 1, rng.uniform(0.5, 1.0, n), rng.uniform(0.0, 0.5, n))
    w = rng.gamma(2.0, 1.0, n)
    path = tmp_path / "rows.parquet"
    df = spark.read.parquet(
        write_parquet(path, {"label": pa.array(y), "s": floats(s), "w": floats(w)})
    )
    _, fp, fn, _ = confusion_matrix(y, s >= 0.5, sample_weight=w).ravel()
    assert (fn, fp, recall_score(y, s >= 0.5, sample_weight=w)) == (0.0, 0.0, 1.0)
    plan = CountPlan(label="label", scores=("s",), buckets=256, thresholds=(0.5,), weight="w")
    for parts in (1, 3, 17):
        counts = collect_count_groups(count_table(df.repartition(parts), plan), plan)
        got = metric_values(counts[("s", ALL_ROWS)])
        assert got[("fn", 0.5)] >= 0 and got[("tn", 0.5)] >= 0, parts
        assert (got[("fn", 0.5)], got[("recall", 0.5)], got[("f1", 0.5)]) == (0.0, 1.0, 1.0), parts


# --------------------------------------------------------------------------- several scores


def test_each_score_column_counts_as_if_counted_alone(spark, tmp_path):
    rng = np.random.default_rng(8)
    n = 4_000
    y = (rng.random(n) < 0.35).astype(np.float64)
    s7 = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0.0, 1.0)
    s8 = np.clip(rng.normal(0.4 + 0.2 * y, 0.3), 0.0, 1.0)
    rows = rng.permutation(n)
    nan7, out8, null8 = rows[:50], rows[50:80], rows[80:100]
    s7[nan7] = np.nan  # invalid for s7 only
    s8[out8] = 1.5  # invalid for s8 only
    s8_null = np.zeros(n, bool)
    s8_null[null8] = True  # invalid for s8 only
    country = [str(c) for c in rng.choice(["de", "fr", "us"], n)]
    df = spark.read.parquet(
        write_parquet(
            tmp_path / "rows.parquet",
            {
                "label": floats(y),
                "s7": floats(s7),
                "s8": floats(np.where(s8_null, 0.0, s8), s8_null),
                "country": pa.array(country, pa.string()),
            },
        )
    )
    slices = (("country",),)
    plan = CountPlan(
        label="label", scores=("s7", "s8"), buckets=BUCKETS, thresholds=THRESHOLDS, slices=slices
    )
    groups = collect_count_groups(count_table(df, plan), plan)
    labels = np.array([f"country={c}" for c in country])
    assert set(groups) == {
        (s, label)
        for s in ("s7", "s8")
        for label in (ALL_ROWS, "country=de", "country=fr", "country=us")
    }

    for name in ("s7", "s8"):
        alone_plan = dataclasses.replace(plan, scores=(name,))
        alone = collect_count_groups(count_table(df, alone_plan), alone_plan)
        assert set(alone) == {key for key in groups if key[0] == name}
        for (score, label), counts in groups.items():
            if score != name:
                continue
            mask = np.ones(n, bool) if label == ALL_ROWS else labels == label
            s = np.where(s8_null, np.nan, s8) if name == "s8" else s7
            reference = count_binary(y[mask], s[mask], BUCKETS, THRESHOLDS)
            if name == "s8":  # numpy has no null: its NaN rows are the null scores here
                invalid = dict(reference.invalid)
                invalid["null_score"], invalid["nan_score"] = invalid["nan_score"], 0
                reference = dataclasses.replace(reference, invalid=invalid)
            assert counts.same_counts(reference, rtol=1e-9), (score, label)
            assert counts.same_counts(alone[(score, label)], rtol=1e-9), (score, label)

    s7_all, s8_all = groups[("s7", ALL_ROWS)], groups[("s8", ALL_ROWS)]
    assert {r: k for r, k in s7_all.invalid.items() if k} == {"nan_score": 50}
    assert {r: k for r, k in s8_all.invalid.items() if k} == {
        "null_score": 20,
        "score_out_of_range": 30,
    }
    assert (s7_all.count, s8_all.count) == (n - 50, n - 50)
    check_against_sklearn(s7_all, y, s7, None)
    check_against_sklearn(s8_all, y, np.where(s8_null, np.nan, s8), None)


# --------------------------------------------------------------------------- partitioning


def test_count_table_does_not_depend_on_partitioning(sliced):
    """Weights, two score columns, three slice specs and merged values at once."""
    df, _, _ = sliced
    plan = CountPlan(
        label="label",
        scores=("s7", "s8"),
        buckets=BUCKETS,
        thresholds=THRESHOLDS,
        weight="w",
        slices=SPECS,
        max_slices_per_spec=4,  # some values go to __other__
    )
    tables = [count_table(df.repartition(n), plan).cache() for n in (1, 3, 17)]
    try:
        exact = ["score_column", "slice", "cell", "n"]  # row counts are exact integers
        key = ["score_column", "slice", "cell"]
        assert tables[0].where(F.col("slice").contains(OTHER_VALUE)).count() > 0
        for other in tables[1:]:
            assert_df_equality(tables[0].select(exact), other.select(exact), ignore_row_order=True)
            # float sums of valid cells agree to summation order (invalid cells hold NaN/inf)
            assert_approx_df_equality(
                tables[0].where("cell >= 0").orderBy(key),
                other.where("cell >= 0").orderBy(key),
                precision=1e-9,
            )
    finally:
        for table in tables:
            table.unpersist()
