"""Job options beyond one counting pass, through the whole job (`tally.job.evaluate`):
``metrics.auc: exact``, ``compare`` (paired DeLong test) and ``score_transform: sigmoid``.

Inputs are Parquet files written with pyarrow; results are read back with SQL and checked
against scikit-learn on the same rows (and, for the comparison, DeLong's test computed
directly on the rows by ``tests/test_compare.py``'s reference).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest
from scipy.special import expit
from sklearn.metrics import average_precision_score, f1_score, log_loss, roc_auc_score

from helpers import paired_rows, row_paired, write_parquet
from tally.config import parse_config
from tally.errors import ConfigError
from tally.job import evaluate

DB = "tally_job_options"
DAY = dt.date(2026, 11, 22)


def raw_config(path: str, model: str, score, **extra) -> dict:
    raw = {
        "model": model,
        "input": {"path": path},
        "columns": {"label": "label", "score": score},
        "metrics": {"buckets": 64, "thresholds": [0.5]},
        "output": {
            "table": f"{DB}.metrics",
            "counts_table": f"{DB}.counts",
            "curves_table": f"{DB}.curves",
        },
    }
    raw.update(extra)
    return raw


def results(spark, model: str) -> dict[tuple[str, str, float | None], float | None]:
    """{(score_column, metric, threshold): value} of slice ALL of one model's run."""
    rows = (
        spark.table(f"{DB}.metrics")
        .where(f"model = '{model}' AND run_date = DATE'{DAY}' AND slice = 'ALL'")
        .collect()
    )
    got = {(r.score_column, r.metric, r.threshold): r.value for r in rows}
    assert len(got) == len(rows), "a metric appears twice"
    return got


def peaked_rows(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Click-through-rate-like scores: mean ≈ 0.02, peaked near 0, with real ties."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.03).astype(np.int64)
    s = np.where(y == 1, rng.beta(1.5, 30.0, n), rng.beta(0.6, 30.0, n))
    s[: n // 10] = np.round(s[: n // 10], 4)  # a tenth of the rows tie on 4 decimals
    return y, s


def test_exact_auc_equals_scikit_learn_on_peaked_scores(spark, tmp_path):
    y, s = peaked_rows(seed=3, n=60_000)
    path = write_parquet(
        tmp_path / "ctr",
        {"label": pa.array(y, pa.int8()), "score": pa.array(s, pa.float64())},
        files=2,
    )
    evaluate(spark, parse_config(raw_config(path, "bucketed", "score")), DAY)
    exact_raw = raw_config(path, "exact", "score")
    exact_raw["metrics"].update(auc="exact", auc_cell_budget=4096)
    evaluate(spark, parse_config(exact_raw), DAY)
    bucketed, exact = results(spark, "bucketed"), results(spark, "exact")

    reference_auc = roc_auc_score(y, s)
    reference_ap = average_precision_score(y, s)
    # 64 uniform buckets put almost every row in the lowest two: far from exact
    assert abs(bucketed[("score", "roc_auc", None)] - reference_auc) > 0.01
    assert bucketed[("score", "roc_auc_error_bound", None)] > 0.01
    assert exact[("score", "roc_auc", None)] == pytest.approx(reference_auc, abs=1e-12)
    assert exact[("score", "pr_auc", None)] == pytest.approx(reference_ap, abs=1e-12)
    assert exact[("score", "roc_auc_error_bound", None)] == 0.0
    assert exact[("score", "auc_passes", None)] == 1  # the count pass shipped the rows
    # the other metrics are the count table's, as in bucketed mode
    for metric in ("count", "log_loss", "brier"):
        assert exact[("score", metric, None)] == bucketed[("score", metric, None)]


def test_exact_auc_with_a_tolerance_stops_early(spark, tmp_path):
    y, s = peaked_rows(seed=4, n=30_000)
    path = write_parquet(
        tmp_path / "ctr",
        {"label": pa.array(y, pa.int8()), "score": pa.array(s, pa.float64())},
        files=2,
    )
    raw = raw_config(path, "tolerance", "score")
    raw["metrics"].update(auc="exact", auc_tolerance=1e-3)
    evaluate(spark, parse_config(raw), DAY)
    got = results(spark, "tolerance")
    bound = got[("score", "roc_auc_error_bound", None)]
    assert bound <= 1e-3
    assert abs(got[("score", "roc_auc", None)] - roc_auc_score(y, s)) <= bound + 1e-12


def test_compare_gives_delongs_paired_test(spark, tmp_path):
    y, s1, s2 = paired_rows(5, 3_000, 64, 64, rate=0.3, rho=0.6)
    path = write_parquet(
        tmp_path / "pair",
        {
            "label": pa.array(y, pa.int64()),
            "v7": pa.array(s1, pa.float64()),
            "v8": pa.array(s2, pa.float64()),
        },
        files=2,
    )
    raw = raw_config(path, "compare", ["v7", "v8"], compare=[["v7", "v8"]])
    evaluate(spark, parse_config(raw), DAY)
    got = results(spark, "compare")
    diff, variance, p_value = row_paired(y, s1, s2)
    assert diff == pytest.approx(roc_auc_score(y, s1) - roc_auc_score(y, s2), abs=1e-12)
    assert got[("v7 vs v8", "auc_diff", None)] == pytest.approx(diff, abs=1e-12)
    assert got[("v7 vs v8", "auc_diff_std", None)] == pytest.approx(np.sqrt(variance), rel=1e-9)
    assert got[("v7 vs v8", "auc_diff_p_value", None)] == pytest.approx(p_value, rel=1e-9)
    # each column keeps its own rows
    assert got[("v7", "roc_auc", None)] == pytest.approx(roc_auc_score(y, s1), abs=1e-12)
    assert got[("v8", "roc_auc", None)] == pytest.approx(roc_auc_score(y, s2), abs=1e-12)


def test_sigmoid_evaluates_logits(spark, tmp_path):
    rng = np.random.default_rng(6)
    y = (rng.random(4_000) < 0.4).astype(np.int64)
    logits = rng.normal(loc=np.where(y == 1, 0.8, -0.8), scale=1.5)
    logits[:3] = [np.inf, -np.inf, np.nan]  # invalid, not scores 1 and 0
    path = write_parquet(
        tmp_path / "logits",
        {"label": pa.array(y, pa.int64()), "logit": pa.array(logits, pa.float64())},
        files=2,
    )
    raw = raw_config(path, "logits", "logit", score_transform="sigmoid")
    raw["metrics"]["auc"] = "exact"
    evaluate(spark, parse_config(raw), DAY)
    got = results(spark, "logits")
    yv, p = y[3:], expit(logits[3:])
    assert got[("logit", "invalid_rows_infinite_score", None)] == 2
    assert got[("logit", "invalid_rows_nan_score", None)] == 1
    assert got[("logit", "count", None)] == yv.size
    assert got[("logit", "roc_auc", None)] == pytest.approx(roc_auc_score(yv, p), abs=1e-12)
    assert got[("logit", "log_loss", None)] == pytest.approx(log_loss(yv, p), rel=1e-9)
    # threshold 0.5 on the probability is logit >= 0 on the raw column
    assert got[("logit", "tp", 0.5)] == int(((logits[3:] >= 0) & (yv == 1)).sum())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"metrics": {"auc": "exakt"}}, "metrics.auc must be one of"),
        ({"metrics": {"auc_tolerance": -0.1}}, "metrics.auc_tolerance"),
        ({"metrics": {"auc_max_passes": 0}}, "metrics.auc_max_passes"),
        ({"compare": [["v7", "v9"]]}, "compare[0] names 'v9'"),
        ({"compare": [["v7"]]}, "compare[0] must be a pair"),
        ({"score_transform": "logit"}, "score_transform must be one of"),
        ({"groups": {"column": "user_id"}}, "unknown key 'groups.column'"),
    ],
)
def test_option_errors_name_the_key(change, message):
    raw = raw_config("data/x", "m", ["v7", "v8"])
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config(raw)


def test_groups_write_gauc_and_ois_f1(spark, tmp_path):
    rng = np.random.default_rng(7)
    n = 3_000
    user = rng.integers(0, 60, n)
    y = (rng.random(n) < 0.3 + 0.004 * user).astype(np.int64)
    s = np.round(np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1), 2)  # ties within groups
    path = write_parquet(
        tmp_path / "users",
        {
            "label": pa.array(y, pa.int64()),
            "score": pa.array(s, pa.float64()),
            "user_id": pa.array([f"u{u}" for u in user]),
        },
        files=2,
    )
    raw = raw_config(path, "groups", "score", groups={"key": "user_id"})
    evaluate(spark, parse_config(raw), DAY)
    got = results(spark, "groups")
    weighted, rows, best_f1s = 0.0, 0, []
    for u in np.unique(user):
        yu, su = y[user == u], s[user == u]
        if 0 < yu.sum() < yu.size:
            weighted += yu.size * roc_auc_score(yu, su)
            rows += yu.size
        if yu.sum() > 0:
            best_f1s.append(
                max(f1_score(yu, su >= t) for t in np.unique(su))  # score >= t is positive
            )
    assert got[("score", "gauc", None)] == pytest.approx(weighted / rows, abs=1e-12)
    assert got[("score", "ois_f1", None)] == pytest.approx(np.mean(best_f1s), abs=1e-12)
    assert got[("score", "gauc_groups_used", None)] + got[
        ("score", "gauc_groups_skipped", None)
    ] == len(np.unique(user))


def test_group_metrics_only_for_slices_the_count_table_keeps(spark, tmp_path):
    rng = np.random.default_rng(8)
    n = 2_000
    y = (rng.random(n) < 0.4).astype(np.int64)
    country = rng.choice(["us", "us", "us", "de", "fr"], n)  # us is the most frequent
    path = write_parquet(
        tmp_path / "kept",
        {
            "label": pa.array(y, pa.int64()),
            "score": pa.array(np.round(rng.random(n), 2), pa.float64()),
            "user_id": pa.array(rng.integers(0, 40, n)),
            "country": pa.array(country),
        },
        files=2,
    )
    raw = raw_config(
        path, "kept", "score", groups={"key": "user_id"}, slices=[["country"]],
        max_slices_per_spec=1,
    )
    evaluate(spark, parse_config(raw), DAY)
    rows = spark.table(f"{DB}.metrics").where(f"model = 'kept' AND run_date = DATE'{DAY}'")
    with_gauc = {r.slice for r in rows.where("metric = 'gauc'").collect()}
    assert with_gauc == {"ALL", "country=us"}
    assert {r.slice for r in rows.select("slice").distinct().collect()} == {
        "ALL", "country=us", "country=__other__"
    }
