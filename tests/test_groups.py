"""Group metrics ``gauc`` and ``ois_f1`` over a group key, against scikit-learn per group.

Every expectation is computed here from the same rows, group by group, with
scikit-learn: ``roc_auc_score`` (ties ½, ``sample_weight`` when weighted) for each
group's AUC, and the largest F1 along ``precision_recall_curve`` for each group's
best F1. Data goes through Parquet written by pyarrow, so nulls stay nulls and NaNs
stay NaNs.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import precision_recall_curve, roc_auc_score

from helpers import is_valid
from tally.errors import InputError
from tally.metrics.groups import (
    GAUC_UNDEFINED,
    OIS_F1_UNDEFINED,
    group_metric_values,
    group_sums,
)
from tally.plan import ALL_ROWS, CountPlan
from tally.spark.groups import group_metrics

KEY = "user`id"  # a backtick in the name: identifiers must be quoted
SCORES = ("s_a", "s_b")
SPECS = (("country",), ("country", "device"))
METRICS = (
    "gauc",
    "gauc_groups_used",
    "gauc_groups_skipped",
    "gauc_rows_null_key",
    "ois_f1",
    "ois_f1_groups_used",
    "ois_f1_groups_skipped",
)


# --------------------------------------------------------------------------- reference


def sklearn_best_f1(y: np.ndarray, s: np.ndarray, w: np.ndarray | None) -> float:
    """The largest F1 over the thresholds of scikit-learn's precision-recall curve."""
    precision, recall, _ = precision_recall_curve(y, s, pos_label=1, sample_weight=w)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    return float(f1.max())


def sklearn_group_values(
    keys: list, y: np.ndarray, s: np.ndarray, w: np.ndarray | None
) -> dict[str, float | None]:
    """gauc, ois_f1 and their counts for valid rows, each group through scikit-learn."""
    members: dict[object, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        if k is not None:
            members[k].append(i)
    weights = np.ones_like(s) if w is None else w
    auc_num = auc_den = f1_sum = 0.0
    auc_used = auc_skipped = f1_used = f1_skipped = 0
    for rows in members.values():
        idx = np.asarray(rows)
        yg, sg, wg = y[idx].astype(np.int64), s[idx], None if w is None else w[idx]
        pos, neg = weights[idx][yg == 1].sum(), weights[idx][yg == 0].sum()
        if pos > 0 and neg > 0:
            auc_num += (pos + neg) * roc_auc_score(yg, sg, sample_weight=wg)
            auc_den += pos + neg
            auc_used += 1
        else:
            auc_skipped += 1
        if pos > 0:
            f1_sum += sklearn_best_f1(yg, sg, wg)
            f1_used += 1
        else:
            f1_skipped += 1
    return {
        "gauc": auc_num / auc_den if auc_used else None,
        "gauc_groups_used": auc_used,
        "gauc_groups_skipped": auc_skipped,
        "gauc_rows_null_key": sum(k is None for k in keys),
        "ois_f1": f1_sum / f1_used if f1_used else None,
        "ois_f1_groups_used": f1_used,
        "ois_f1_groups_skipped": f1_skipped,
    }


def slice_labels(columns: dict[str, list], spec: tuple[str, ...]) -> list[str]:
    if not spec:
        return [ALL_ROWS] * len(columns[KEY])
    rows = zip(*(columns[c] for c in spec), strict=True)
    return [
        "/".join(f"{c}={'null' if v is None else v}" for c, v in zip(spec, values, strict=True))
        for values in rows
    ]


def expected_values(data: dict, score: str, weighted: bool) -> dict[str, dict]:
    """Per slice label: the scikit-learn values on that slice's valid rows."""
    y, s = data["label"], data[score]
    w = data["w"] if weighted else None
    valid = is_valid(y, s, w)
    out = {}
    for spec in ((), *SPECS):
        labels = np.array(slice_labels(data, spec))
        for label in np.unique(labels[valid]):
            mask = valid & (labels == label)
            keys = [k for k, m in zip(data[KEY], mask, strict=True) if m]
            out[str(label)] = sklearn_group_values(
                keys, y[mask], s[mask], None if w is None else w[mask]
            )
    return out


def as_dict(values: list) -> dict[str, float | None]:
    return {m.metric: m.value for m in values}


# --------------------------------------------------------------------------- data


@pytest.fixture(scope="module")
def grouped(spark, tmp_path_factory):
    """3,000 rows in ~90 groups: ties, one-class groups, null keys, bad rows, weights."""
    rng = np.random.default_rng(7)
    n = 3000
    user = rng.integers(0, 90, n)
    y = (rng.random(n) < 0.35).astype(np.float64)
    y[user >= 80] = 0.0  # groups 80…84 negative only, 85…89 positive only
    y[user >= 85] = 1.0
    s_a = np.round(np.clip(rng.normal(0.35 + 0.25 * y, 0.2), 0, 1), 2)  # many ties
    s_b = np.round(rng.beta(2 + 2 * y, 3), 1).astype(np.float32)  # float32, heavy ties
    s_a[rng.random(n) < 0.01] = np.nan
    s_a[rng.choice(n, 10, replace=False)] = [1.5] * 5 + [-0.25] * 5
    y[rng.choice(n, 12, replace=False)] = [np.nan] * 6 + [2.0] * 6
    w = rng.uniform(0.2, 3.0, n)
    w[rng.random(n) < 0.03] = 0.0
    w[rng.choice(n, 12, replace=False)] = [-1.0] * 4 + [np.nan] * 4 + [np.inf] * 4
    keys: list[int | None] = [None if rng.random() < 0.05 else int(u) for u in user]
    keys[0] = 999  # a group of one row
    country = [None if c == "-" else str(c) for c in rng.choice(["de", "fr", "us", "-"], n)]
    device = [str(d) for d in rng.choice(["ios", "web"], n)]
    table = pa.table(
        {
            KEY: pa.array(keys, pa.int64()),
            "label": pa.array(y, mask=np.isnan(y)),
            "s_a": pa.array(s_a),
            "s_b": pa.array(s_b, pa.float32()),
            "w": pa.array(w),
            "country": pa.array(country, pa.string()),
            "device": pa.array(device, pa.string()),
            "unused": pa.array(rng.random(n)),
        }
    )
    path = tmp_path_factory.mktemp("grouped") / "rows.parquet"
    pq.write_table(table, path)
    data = {
        KEY: keys,
        "label": y,
        "s_a": s_a,
        "s_b": s_b.astype(np.float64),  # float32 scores are evaluated at their stored value
        "w": w,
        "country": country,
        "device": device,
    }
    return spark.read.parquet(str(path)), data


def plan_for(weight: str | None) -> CountPlan:
    return CountPlan(
        label="label", scores=SCORES, buckets=64, thresholds=(0.5,), weight=weight, slices=SPECS
    )


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("weight", [None, "w"])
def test_group_metrics_equal_sklearn_per_group(grouped, weight):
    df, data = grouped
    got = group_metrics(df, plan_for(weight), KEY)
    expected = {
        (score, label): values
        for score in SCORES
        for label, values in expected_values(data, score, weight is not None).items()
    }
    assert set(got) == set(expected)
    assert {"country=null", "country=null/device=web", "country=de/device=ios"} <= {
        label for _, label in got
    }
    for key, values in got.items():
        assert [m.metric for m in values] == list(METRICS), key
        assert all(m.threshold is None and m.class_ is None for m in values)
        actual = as_dict(values)
        for metric, value in expected[key].items():
            assert actual[metric] == pytest.approx(value, rel=1e-12, abs=1e-12), (key, metric)
    # the data exercise what they should: one-class groups on both sides, null keys
    overall = expected[("s_a", ALL_ROWS)]
    assert overall["gauc_groups_skipped"] >= 11  # 80…89 and the one-row group
    assert overall["ois_f1_groups_skipped"] >= 5
    assert overall["gauc_rows_null_key"] > 100
    assert 0.6 < overall["gauc"] < 0.9


def test_weights_change_the_values(grouped):
    """A weighted run is not the unweighted one (the weights reach every group)."""
    df, _ = grouped
    unweighted = as_dict(group_metrics(df, plan_for(None), KEY)[("s_a", ALL_ROWS)])
    weighted = as_dict(group_metrics(df, plan_for("w"), KEY)[("s_a", ALL_ROWS)])
    assert abs(weighted["gauc"] - unweighted["gauc"]) > 1e-4
    assert abs(weighted["ois_f1"] - unweighted["ois_f1"]) > 1e-4


@pytest.mark.parametrize("weight", [None, "w"])
def test_partitioning_does_not_change_values(grouped, spark_conf, weight):
    df, _ = grouped
    results = []
    for partitions in (1, 7):
        with spark_conf(spark__sql__shuffle__partitions=str(partitions)):
            results.append(group_metrics(df.repartition(partitions), plan_for(weight), KEY))
    one, seven = results
    assert set(one) == set(seven)
    for key in one:
        for a, b in zip(one[key], seven[key], strict=True):
            assert a.metric == b.metric
            assert a.value == pytest.approx(b.value, rel=1e-12, abs=1e-12), (key, a.metric)


def test_no_usable_group_is_undefined_with_a_reason(spark):
    rows = [(1, 0.0, 0.2), (1, 0.0, 0.7), (2, 0.0, 0.4), (None, 1.0, 0.9)]
    df = spark.createDataFrame(rows, "uid long, label double, score double")
    plan = CountPlan(label="label", scores=("score",), buckets=8, thresholds=(0.5,))
    got = {m.metric: m for m in group_metrics(df, plan, "uid")[("score", ALL_ROWS)]}
    assert got["gauc"].value is None and got["gauc"].reason == GAUC_UNDEFINED
    assert got["ois_f1"].value is None and got["ois_f1"].reason == OIS_F1_UNDEFINED
    assert got["gauc_groups_used"].value == 0 and got["gauc_groups_skipped"].value == 2
    assert got["ois_f1_groups_used"].value == 0 and got["ois_f1_groups_skipped"].value == 2
    assert got["gauc_rows_null_key"].value == 1  # the one positive has no key


def test_empty_input_has_its_all_slice(spark):
    df = spark.createDataFrame([], "uid string, label double, score double, c string")
    plan = CountPlan(
        label="label", scores=("score",), buckets=8, thresholds=(0.5,), slices=(("c",),)
    )
    got = group_metrics(df, plan, "uid")
    assert list(got) == [("score", ALL_ROWS)]
    values = as_dict(got[("score", ALL_ROWS)])
    assert values["gauc"] is None and values["ois_f1"] is None
    assert values["gauc_groups_used"] == 0 and values["gauc_rows_null_key"] == 0


def test_missing_key_column_fails_naming_it(spark):
    df = spark.createDataFrame([(0.0, 0.5)], "label double, score double")
    plan = CountPlan(label="label", scores=("score",), buckets=8, thresholds=(0.5,))
    with pytest.raises(InputError, match="group key column 'user_id' not found"):
        group_metrics(df, plan, "user_id")


# --------------------------------------------------------------------------- numpy reference


@pytest.mark.parametrize("weighted", [False, True])
def test_numpy_reference_equals_sklearn(weighted):
    rng = np.random.default_rng(11)
    n = 800
    keys = [None if rng.random() < 0.05 else int(k) for k in rng.integers(0, 25, n)]
    y = (rng.random(n) < 0.4).astype(np.float64)
    y[[i for i, k in enumerate(keys) if k in (3, 4)]] = 0.0  # two negative-only groups
    s = np.round(rng.random(n), 1)
    w = rng.uniform(0.1, 2.0, n) if weighted else None
    expected = sklearn_group_values(keys, y, s, w)
    got = as_dict(group_metric_values(group_sums(keys, y, s, w)))
    assert expected["gauc_groups_skipped"] == 2
    for metric, value in expected.items():
        assert got[metric] == pytest.approx(value, rel=1e-12, abs=1e-12), metric


def test_reference_formula_on_a_hand_example():
    """One group: scores 0.9(+), 0.5(+), 0.5(−), 0.1(−): AUC = (2 + ½·1 + 1)/4 = 0.875;
    F1 at 0.9 = 2/3, at 0.5 = 4/5, at 0.1 = 2/3."""
    y = np.array([1.0, 1.0, 0.0, 0.0])
    s = np.array([0.9, 0.5, 0.5, 0.1])
    assert roc_auc_score(y, s) == pytest.approx(0.875)
    sums = group_sums(["u"] * 4, y, s)
    values = as_dict(group_metric_values(sums))
    assert values["gauc"] == pytest.approx(roc_auc_score(y, s), abs=1e-15)
    assert values["ois_f1"] == pytest.approx(sklearn_best_f1(y.astype(int), s, None), abs=1e-15)

