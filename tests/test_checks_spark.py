"""Checks read from a results table holding several nights, outcomes written to the checks table.

The stored values are chosen by hand; every expected outcome below is computed by
hand from them (baseline means, limits, standard errors), not by the code under test.
"""

from __future__ import annotations

import datetime as dt

import pytest

from tally.config import parse_config
from tally.errors import ChecksFailedError, InputError
from tally.spark.checks_table import CHECKS_SCHEMA, evaluate_checks, run_checks
from tally.spark.results import write_results

DB = "tally_checks_spark"
DAY = dt.date(2026, 11, 10)


def day(n: int) -> dt.date:
    return dt.date(2026, 11, n)


def rows(date: dt.date, column: str, values: dict, slice_: str = "ALL", model: str = "m",
         window_days: int = 1) -> list[tuple]:
    """Results rows (RESULTS_SCHEMA order) of one (run, score column, slice)."""
    return [(column, slice_, metric, None, None, float(value), None, date, model, window_days)
            for metric, value in values.items()]


@pytest.fixture(scope="module")
def results(spark) -> str:
    table = f"{DB}.metrics"
    stored = [
        # score column a, ALL: roc_auc 0.80 / 0.82 / 0.78 on the 3 nights before DAY
        *rows(day(5), "a", {"roc_auc": 0.50, "roc_auc_std": 0.01}),  # 4th night back: not used
        *rows(day(7), "a", {"roc_auc": 0.80, "roc_auc_std": 0.01}),
        *rows(day(8), "a", {"roc_auc": 0.82, "roc_auc_std": 0.01}),
        *rows(day(9), "a", {"roc_auc": 0.78, "roc_auc_std": 0.01}),
        *rows(DAY, "a", {"roc_auc": 0.785, "roc_auc_std": 0.01, "count": 997,
                         "invalid_rows": 3}),
        # slice country=US of a: only on the night before DAY, and tonight
        *rows(day(9), "a", {"roc_auc": 0.90}, "country=US"),
        *rows(DAY, "a", {"roc_auc": 0.88}, "country=US"),
        # score column b: one night before, no pr_auc before tonight
        *rows(day(9), "b", {"roc_auc": 0.91}),
        *rows(DAY, "b", {"roc_auc": 0.905, "pr_auc": 0.5}),
        # rows that must not count: a rollup, another model, a later night
        *rows(day(9), "a", {"roc_auc": 0.10}, window_days=7),
        *rows(day(9), "a", {"roc_auc": 0.10}, model="other"),
        *rows(day(11), "a", {"roc_auc": 0.10}),
    ]
    write_results(spark, table, stored)
    return table


def config(*checks: dict):
    return parse_config({
        "model": "m",
        "input": {"path": "unused"},
        "columns": {"label": "y", "score": ["a", "b"]},
        "slices": [["country"]],
        "output": {"table": f"{DB}.metrics", "checks_table": f"{DB}.checks"},
        "checks": list(checks),
    })


CHECKS = [
    {"metric": "roc_auc", "min": 0.8},  # a: 0.785 fails, b: 0.905 passes
    {"metric": "roc_auc", "max_drop": 0.01, "baseline": {"nights": 3}, "score_column": "a"},
    {"metric": "roc_auc", "max_drop": 0.01, "baseline": {"nights": 3, "statistic": "last"},
     "score_column": "a"},
    {"metric": "roc_auc", "slice": "country=US", "max_drop": 0.01, "baseline": "last_3_nights",
     "score_column": "a"},
    {"metric": "roc_auc", "max_drop": 0.005, "baseline": "last_3_nights", "significant": True,
     "score_column": "a"},
    {"metric": "invalid_rows", "max_ratio": 0.001, "score_column": "a"},
    {"metric": "roc_auc", "max_drop": 0.01, "baseline": "last_7_nights", "score_column": "b"},
    {"metric": "pr_auc", "max_drop": 0.01, "baseline": "previous", "score_column": "b"},
]


def test_checks_from_stored_nights_match_hand_computed_outcomes(spark, results):
    got = evaluate_checks(spark, config(*CHECKS), DAY)
    by = {(o.check, o.score_column, o.slice): o for o in got}
    assert len(got) == 9

    a_min = by[("roc_auc >= 0.8", "a", "ALL")]
    assert (a_min.value, a_min.limit, a_min.passed) == (0.785, 0.8, False)
    assert by[("roc_auc >= 0.8", "b", "ALL")].passed

    # mean of 0.78, 0.82, 0.80 = 0.80 (the 0.50 of the 4th night, the rollup, the other model
    # and the later night are not used); limit 0.79 > 0.785
    mean = by[("roc_auc drop <= 0.01 vs the mean of the last 3 nights", "a", "ALL")]
    assert mean.baseline == pytest.approx(0.80, abs=1e-12)
    assert mean.limit == pytest.approx(0.79, abs=1e-12)
    assert not mean.passed

    # the latest night: 0.78, limit 0.77 <= 0.785
    last = by[("roc_auc drop <= 0.01 vs the latest of the last 3 nights", "a", "ALL")]
    assert last.baseline == pytest.approx(0.78, abs=1e-12) and last.passed

    # country=US: one night of three (0.90), limit 0.89 > 0.88
    us = by[("roc_auc drop <= 0.01 vs the mean of the last 3 nights", "a", "country=US")]
    assert us.baseline == pytest.approx(0.90, abs=1e-12) and not us.passed
    assert "baseline has 1 of 3 nights" in us.message

    # significant: sigma = sqrt(0.01^2 + 3 * 0.01^2 / 3^2) = 0.0115470054; 1.96 sigma = 0.0226321
    # drop 0.015 is within it: limit 0.80 - 0.0226321 = 0.7773679 <= 0.785
    sig = by[("roc_auc drop <= 0.005 vs the mean of the last 3 nights, if significant", "a",
              "ALL")]
    assert sig.limit == pytest.approx(0.7773679, abs=1e-7) and sig.passed

    ratio = by[("invalid_rows / rows read <= 0.001", "a", "ALL")]
    assert ratio.value == pytest.approx(0.003, abs=1e-15) and not ratio.passed

    # b has one night of seven: 0.91, limit 0.90 <= 0.905
    b_week = by[("roc_auc drop <= 0.01 vs the mean of the last 7 nights", "b", "ALL")]
    assert b_week.baseline == pytest.approx(0.91, abs=1e-12) and b_week.passed
    assert "baseline has 1 of 7 nights" in b_week.message

    first = by[("pr_auc drop <= 0.01 vs the previous night", "b", "ALL")]
    assert first.passed and first.baseline is None
    assert first.message == "no baseline yet (0 of 1 nights)"


@pytest.mark.hive_catalog
def test_outcomes_are_written_then_the_failure_raised_and_a_rerun_replaces_them(spark, results):
    table = f"{DB}.checks"
    run_checks(spark, config(CHECKS[6]), day(9))  # another date: passes (no baseline), kept
    with pytest.raises(ChecksFailedError) as failure:
        run_checks(spark, config(*CHECKS), DAY)
    assert failure.value.exit_code == 6
    lines = failure.value.failures
    assert "roc_auc >= 0.8 on ALL of a: 0.785" in lines
    assert "invalid_rows / rows read <= 0.001 on ALL of a: 0.003 (3 of 1000 rows read)" in lines
    assert len(lines) == 4

    assert [(f.name, f.dataType) for f in spark.table(table).schema.fields] == [
        (f.name, f.dataType) for f in CHECKS_SCHEMA.fields
    ]
    stored = spark.table(table).where(f"run_date = DATE'{DAY}'").collect()
    assert len(stored) == 9 and sum(not r.passed for r in stored) == 4
    row = next(r for r in stored if r.check == "roc_auc >= 0.8" and r.score_column == "a")
    assert (row.model, row.slice, row.metric, row.value, row.limit) == (
        "m", "ALL", "roc_auc", 0.785, 0.8
    )

    run_checks(spark, config(CHECKS[7]), DAY)  # the rerun with one check: it alone remains
    again = spark.table(table).where(f"run_date = DATE'{DAY}'").collect()
    assert [(r.check, r.passed) for r in again] == [("pr_auc drop <= 0.01 vs the previous night",
                                                     True)]
    assert spark.table(table).where(f"run_date = DATE'{day(9)}'").count() == 1


def test_a_run_without_results_is_an_input_error(spark, results):
    with pytest.raises(InputError, match=r"no results in tally_checks_spark\.metrics for model "
                                         r"'m' on run_date 2026-11-12"):
        evaluate_checks(spark, config(CHECKS[0]), day(12))
    cfg = parse_config({
        "model": "m", "input": {"path": "x"}, "columns": {"label": "y", "score": "a"},
        "output": {"table": f"{DB}.missing"}, "checks": [CHECKS[0]],
    })
    with pytest.raises(InputError, match=r"results table tally_checks_spark\.missing does not"):
        evaluate_checks(spark, cfg, DAY)
