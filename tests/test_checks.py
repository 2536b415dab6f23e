"""Gates (`checks:`): the rules on hand-computed cases, and the config errors (no Spark)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tally.checks import Baseline, Check, Stored, evaluate_check
from tally.checks_config import metric_shapes
from tally.cli import main
from tally.config import parse_config
from tally.counts import count_binary
from tally.counts_multi import (
    MULTICLASS_INVALID_REASONS,
    MULTILABEL_INVALID_REASONS,
    count_multiclass,
    count_multilabel,
)
from tally.errors import ConfigError
from tally.metrics.binary import binary_metrics
from tally.metrics.groups import GroupSums, group_metric_values
from tally.metrics.inference import PairedSums, auc_comparison
from tally.metrics.multiclass import multiclass_metrics
from tally.metrics.multilabel import multilabel_metrics

WEEK = Baseline(7, "mean")


def night(**values: float | None) -> dict:
    """A run's numbers of one (score column, slice): metric -> value, class and threshold None."""
    return {(m, None, None): Stored(v, None if v is not None else "no positive rows")
            for m, v in values.items()}


# --- absolute bounds --------------------------------------------------------------------------


def test_min_fails_below_and_says_so_in_one_line():
    check = Check("roc_auc", "min", 0.8)
    out = evaluate_check(check, "score", night(roc_auc=0.7712), [])
    assert (out.passed, out.value, out.limit, out.baseline) == (False, 0.7712, 0.8, None)
    assert out.check == "roc_auc >= 0.8"
    assert out.line(with_score_column=False) == "roc_auc >= 0.8 on ALL: 0.7712"
    assert out.line() == "roc_auc >= 0.8 on ALL of score: 0.7712"
    assert evaluate_check(check, "score", night(roc_auc=0.8), []).passed  # at the limit


def test_max_and_thresholded_label():
    check = Check("recall", "max", 0.9, threshold=0.5)
    above = {("recall", 0.5, None): Stored(0.95)}
    out = evaluate_check(check, "s", above, [])
    assert not out.passed and out.check == "recall@0.5 <= 0.9"
    assert evaluate_check(check, "s", {("recall", 0.5, None): Stored(0.9)}, []).passed


def test_max_ratio_is_a_share_of_the_rows_read():
    # 3 invalid of 997 valid + 3 invalid = 1000 read: 0.003 > 0.001
    check = Check("invalid_rows", "max_ratio", 0.001)
    out = evaluate_check(check, "s", night(invalid_rows=3, count=997), [])
    assert not out.passed
    assert out.value == pytest.approx(0.003, abs=1e-15)
    assert out.message == "3 of 1000 rows read"
    # 1 of 1000 is exactly the limit: passes
    assert evaluate_check(check, "s", night(invalid_rows=1, count=999), []).passed
    # a per-reason count over the same denominator: 2 of 1000
    reason = Check("invalid_rows_nan_score", "max_ratio", 0.001)
    numbers = night(invalid_rows_nan_score=2, invalid_rows=3, count=997)
    assert evaluate_check(reason, "s", numbers, []).value == pytest.approx(0.002, abs=1e-15)
    empty = evaluate_check(check, "s", night(invalid_rows=0, count=0), [])
    assert empty.passed and empty.message == "no rows read"


def test_null_missing_or_nan_values_fail():
    check = Check("roc_auc", "min", 0.8)
    null = evaluate_check(check, "s", night(roc_auc=None), [])
    assert not null.passed and null.message == "value is null: no positive rows"
    missing = evaluate_check(check, "s", night(count=5), [])
    assert not missing.passed and missing.message == "this run has no such value"
    no_slice = evaluate_check(Check("roc_auc", "min", 0.8, slice="country=US"), "s", None, [])
    assert not no_slice.passed
    assert no_slice.message == "no results for slice country=US of s in this run"
    assert not evaluate_check(check, "s", night(roc_auc=math.nan), []).passed
    assert not evaluate_check(Check("roc_auc", "max", 0.8), "s", night(roc_auc=math.nan), []).passed


# --- change bounds ----------------------------------------------------------------------------


def test_max_drop_against_the_mean_of_the_previous_nights():
    history = [night(roc_auc=0.80), night(roc_auc=0.82), night(roc_auc=0.78)]  # newest first
    check = Check("roc_auc", "max_drop", 0.01, baseline=Baseline(3, "mean"))
    out = evaluate_check(check, "s", night(roc_auc=0.785), history)
    # mean 0.80, limit 0.80 - 0.01 = 0.79
    assert out.baseline == pytest.approx(0.80, abs=1e-15)
    assert out.limit == pytest.approx(0.79, abs=1e-15)
    assert not out.passed
    assert out.check == "roc_auc drop <= 0.01 vs the mean of the last 3 nights"
    assert evaluate_check(check, "s", night(roc_auc=0.795), history).passed


def test_only_the_last_n_runs_count_and_null_nights_are_missing():
    # N = 2: the third run (0.50) is outside the baseline; a null night is not a value
    history = [night(roc_auc=None), night(roc_auc=0.84), night(roc_auc=0.50)]
    check = Check("roc_auc", "max_drop", 0.02, baseline=Baseline(2, "mean"))
    out = evaluate_check(check, "s", night(roc_auc=0.83), history)
    assert out.baseline == 0.84 and out.limit == pytest.approx(0.82, abs=1e-15) and out.passed
    assert "baseline has 1 of 2 nights" in out.message


def test_last_takes_the_newest_night_with_a_value():
    history = [{}, night(roc_auc=0.82), night(roc_auc=0.78)]  # the newest run lacks the slice
    check = Check("roc_auc", "max_drop", 0.01, baseline=Baseline(3, "last"))
    out = evaluate_check(check, "s", night(roc_auc=0.805), history)
    assert out.baseline == 0.82 and out.limit == pytest.approx(0.81, abs=1e-15)
    assert not out.passed
    assert "baseline has 2 of 3 nights" in out.message
    assert Check("roc_auc", "max_drop", 0.01, baseline=Baseline(1, "last")).describe() == (
        "roc_auc drop <= 0.01 vs the previous night"
    )


def test_too_few_nights_use_those_there_are_and_none_passes():
    check = Check("roc_auc", "max_drop", 0.01, baseline=WEEK)
    two = evaluate_check(check, "s", night(roc_auc=0.80), [night(roc_auc=0.80),
                                                             night(roc_auc=0.84)])
    # mean 0.82, limit 0.81: 0.80 fails
    assert two.baseline == pytest.approx(0.82, abs=1e-15) and not two.passed
    assert "baseline has 2 of 7 nights" in two.message
    first = evaluate_check(check, "s", night(roc_auc=0.5), [])
    assert first.passed and first.baseline is None and first.limit is None
    assert first.message == "no baseline yet (0 of 7 nights)"


def test_max_rise_and_relative_bounds():
    rise = Check("log_loss", "max_rise", 0.02, baseline=Baseline(1, "last"))
    out = evaluate_check(rise, "s", night(log_loss=0.33), [night(log_loss=0.30)])
    assert out.limit == pytest.approx(0.32, abs=1e-15) and not out.passed
    # count fell to 2% of its usual: a relative drop of 98% > 50%
    drop = Check("count", "max_drop_ratio", 0.5, baseline=Baseline(2, "mean"))
    history = [night(count=1_000_000), night(count=1_200_000)]
    out = evaluate_check(drop, "s", night(count=22_000), history)
    assert (out.baseline, out.limit, out.passed) == (1_100_000, 550_000, False)
    assert out.check == "count relative drop <= 0.5 vs the mean of the last 2 nights"
    assert evaluate_check(drop, "s", night(count=550_000), history).passed
    grow = Check("log_loss", "max_rise_ratio", 0.1, baseline=Baseline(1, "last"))
    assert evaluate_check(grow, "s", night(log_loss=0.4), [night(log_loss=0.5)]).passed
    assert not evaluate_check(grow, "s", night(log_loss=0.56), [night(log_loss=0.5)]).passed


def test_significant_drop_must_exceed_the_noise():
    # tonight se 0.01; baseline: mean of two nights with se 0.01 each -> se 0.01 / sqrt(2).
    # sigma = sqrt(0.01^2 + 0.0002 / 4) = 0.012247449; 1.96 sigma = 0.024004999
    history = [night(roc_auc=0.80, roc_auc_std=0.01), night(roc_auc=0.80, roc_auc_std=0.01)]
    significant = Check("roc_auc", "max_drop", 0.005, baseline=Baseline(2), significant=True)
    plain = Check("roc_auc", "max_drop", 0.005, baseline=Baseline(2))
    noisy = night(roc_auc=0.78, roc_auc_std=0.01)  # drop 0.02: beyond 0.005, within noise
    out = evaluate_check(significant, "s", noisy, history)
    assert out.passed and out.limit == pytest.approx(0.80 - 0.024004999, abs=1e-9)
    assert "1.96·σ = 0.024" in out.message
    assert not evaluate_check(plain, "s", noisy, history).passed
    real = night(roc_auc=0.77, roc_auc_std=0.01)  # drop 0.03 > 0.024
    assert not evaluate_check(significant, "s", real, history).passed
    # a noise below max_drop leaves max_drop as the bound
    precise = [night(roc_auc=0.80, roc_auc_std=0.0001)] * 2
    tight = evaluate_check(significant, "s", night(roc_auc=0.796, roc_auc_std=0.0001), precise)
    assert tight.limit == pytest.approx(0.795, abs=1e-15) and tight.passed


def test_significant_without_a_standard_error_is_judged_on_max_drop():
    history = [night(roc_auc=0.80, roc_auc_std=None)]
    check = Check("roc_auc", "max_drop", 0.005, baseline=Baseline(1, "last"), significant=True)
    out = evaluate_check(check, "s", night(roc_auc=0.79, roc_auc_std=0.01), history)
    assert not out.passed and out.limit == pytest.approx(0.795, abs=1e-15)
    assert "no standard error (roc_auc_std is null): judged on max_drop alone" in out.message


# --- which metrics a check may name -----------------------------------------------------------


def _shapes_of(values) -> dict[str, tuple[bool, bool]]:
    return {v.metric: (v.threshold is not None, v.class_ is not None) for v in values}


def _registered(config) -> dict[str, tuple[bool, bool]]:
    return {m: (s.thresholded, s.per_class) for m, s in metric_shapes(config).items()}


def test_binary_registry_is_every_metric_the_job_writes():
    rng = np.random.default_rng(1)
    y, s = rng.integers(0, 2, 50), rng.random(50)
    counts = count_binary(y, s, 8, (0.5,))
    written = _shapes_of(binary_metrics(counts, beta=2.0))
    empty = (np.zeros(8), np.zeros(8))  # no rows: the names of the undefined values
    written |= _shapes_of(auc_comparison(empty, empty, PairedSums.empty()))
    written |= _shapes_of(group_metric_values(GroupSums()))
    written |= {"auc_passes": (False, False), "merged_slice_values": (False, False)}  # job.py
    config = parse_config({
        "model": "m", "input": {"path": "x"}, "columns": {"label": "y", "score": ["a", "b"]},
        "metrics": {"beta": 2.0, "auc": "exact"}, "compare": [["a", "b"]],
        "groups": {"key": "user"},
    })
    assert _registered(config) == written


def test_multilabel_and_multiclass_registries_are_what_they_write():
    rng = np.random.default_rng(2)
    labels, scores = rng.integers(0, 2, (30, 3)), rng.random((30, 3))
    counts = count_multilabel(labels, scores, ("a", "b", "c"), 8, (0.5,))
    written = _shapes_of(multilabel_metrics(counts))
    written |= {f"invalid_rows_{r}": (False, False) for r in MULTILABEL_INVALID_REASONS}
    config = parse_config({
        "model": "m", "task": "multilabel", "classes": ["a", "b", "c"], "input": {"path": "x"},
        "columns": {"labels": "y", "scores": "p"},
    })
    assert _registered(config) == written

    y, p = rng.integers(0, 3, 40), rng.random((40, 3))
    counts = count_multiclass(y, p.argmax(axis=1), ("a", "b", "c"), top_k_scores=p, ks=(2,))
    written = _shapes_of(multiclass_metrics(counts))
    written |= {f"invalid_rows_{r}": (False, False) for r in MULTICLASS_INVALID_REASONS}
    written |= {"confusion": (False, True)}  # job.py writes the matrix cells
    config = parse_config({
        "model": "m", "task": "multiclass", "classes": ["a", "b", "c"], "input": {"path": "x"},
        "columns": {"label": "y", "scores": "p"}, "metrics": {"top_k": [2]},
    })
    assert _registered(config) == written


# --- config: parsed forms and errors ----------------------------------------------------------

BASE = {
    "model": "m",
    "input": {"path": "x"},
    "columns": {"label": "y", "score": "s"},
    "metrics": {"thresholds": [0.3, 0.5]},
    "slices": [["country"], ["country", "device"]],
}


def checks_of(*checks: dict) -> tuple[Check, ...]:
    return parse_config({**BASE, "checks": list(checks)}).checks


def test_checks_parse_into_typed_rules():
    got = checks_of(
        {"metric": "roc_auc", "min": 0.8},
        {"metric": "count", "min": 1000000},
        {"metric": "invalid_rows", "max_ratio": 0.001},
        {"metric": "roc_auc", "slice": "country=US", "max_drop": 0.01, "baseline": "last_7_nights"},
        {"metric": "roc_auc", "max_drop": 0.005, "baseline": "last_7_nights", "significant": True},
        {"metric": "recall", "threshold": 0.3, "min": 0.5, "slice": "country=US/device=ios"},
        {"metric": "log_loss", "max_rise": 0.01, "baseline": {"nights": 3, "statistic": "last"}},
        {"metric": "pr_auc", "max_drop": 0.01, "baseline": "previous", "score_column": "s"},
    )
    assert got[0] == Check("roc_auc", "min", 0.8)
    assert got[1].amount == 1_000_000.0 and got[2].bound == "max_ratio"
    assert got[3] == Check("roc_auc", "max_drop", 0.01, slice="country=US", baseline=WEEK)
    assert got[4].significant and got[4].baseline == WEEK
    assert (got[5].threshold, got[5].slice) == (0.3, "country=US/device=ios")
    assert got[6].baseline == Baseline(3, "last")
    assert got[7].baseline == Baseline(1, "last") and got[7].score_column == "s"


@pytest.mark.parametrize(
    ("check", "message"),
    [
        ({"metric": "roc_acu", "min": 0.8},
         "checks[0].metric: 'roc_acu' is not a metric this job writes; did you mean 'roc_auc'?"),
        ({"metric": "log_loss", "max_rise": 0.01, "baseline": "previous", "significant": True},
         "checks[0].significant: log_loss has no standard error"),
        ({"metric": "roc_auc", "min": 0.8, "significant": True},
         "checks[0].significant goes with max_drop or max_rise, not min"),
        ({"metric": "roc_auc", "mn": 0.8},
         "unknown key 'checks[0].mn'; did you mean 'checks[0].min'?"),
        ({"metric": "roc_auc", "min": 0.5, "max": 0.9}, "found 2 (min, max)"),
        ({"metric": "roc_auc"}, "checks[0] needs exactly one bound"),
        ({"min": 0.5}, "missing required key 'checks[0].metric'"),
        ({"metric": "roc_auc", "min": "high"}, "checks[0].min must be a number"),
        ({"metric": "roc_auc", "max_drop": 0.01}, "max_drop needs a baseline"),
        ({"metric": "roc_auc", "min": 0.8, "baseline": "previous"}, "min takes no baseline"),
        ({"metric": "roc_auc", "max_drop": 0.01, "baseline": "last_week"},
         "checks[0].baseline must be 'previous', 'last_<N>_nights'"),
        ({"metric": "roc_auc", "max_drop": 0.01, "baseline": {"nights": 3, "statistic": "median"}},
         "checks[0].baseline.statistic must be one of ['mean', 'last']"),
        ({"metric": "roc_auc", "max_drop": 0.01, "baseline": "last_0_nights"},
         "checks[0].baseline must be"),
        ({"metric": "roc_auc", "max_ratio": 0.01},
         "checks[0].max_ratio is for invalid_rows and invalid_rows_<reason>"),
        ({"metric": "recall", "min": 0.5}, "checks[0] needs a threshold: recall is written at"),
        ({"metric": "recall", "min": 0.5, "threshold": 0.7},
         "checks[0].threshold: recall is written at [0.3, 0.5], not 0.7"),
        ({"metric": "roc_auc", "min": 0.5, "threshold": 0.5}, "roc_auc has no threshold"),
        ({"metric": "roc_auc", "min": 0.5, "slice": "contry=US"},
         "checks[0].slice 'contry=US' is not ALL nor a label of the configured slices"),
        ({"metric": "roc_auc", "min": 0.5, "score_column": "t"},
         "checks[0].score_column: roc_auc is written for ['s'], not 't'"),
        ({"metric": "roc_auc", "min": 0.5, "class": "a"}, "roc_auc is not a per-class metric"),
    ],
)
def test_check_config_errors_name_the_key(check, message):
    with pytest.raises(ConfigError) as failure:
        checks_of(check)
    assert message in str(failure.value)


def test_checks_must_be_a_list_of_mappings():
    with pytest.raises(ConfigError, match="checks must be a list of mappings"):
        parse_config({**BASE, "checks": {"metric": "roc_auc"}})
    with pytest.raises(ConfigError, match=r"checks\[1\] must be a mapping"):
        parse_config({**BASE, "checks": [{"metric": "roc_auc", "min": 0.5}, "roc_auc > 0.5"]})


def test_table_names_may_be_qualified_or_backquoted():
    for name in ("metrics", "tally.metrics", "spark_catalog.tally.metrics", "db.`odd name; x`"):
        assert parse_config({**BASE, "output": {"checks_table": name}}).output.checks_table == name
    for name in ("a.b.c.d", "a-b", "db.`t`x`", "db."):
        with pytest.raises(ConfigError):
            parse_config({**BASE, "output": {"table": name}})


# --- through the CLI: exit 2 before Spark starts -----------------------------------------------


def _cli(tmp_path: Path, capsys, text: str, command: str = "check") -> tuple[int, str]:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    code = main([command, "--config", str(path), "--run-date", "2026-11-22"])
    return code, capsys.readouterr().err


JOB = "model: m\ninput: {path: x}\ncolumns: {label: y, score: s}\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (JOB + "checks: [{metric: auc, min: 0.8}]\n",
         "tally: error: checks[0].metric: 'auc' is not a metric this job writes"),
        (JOB + "checks: [{metric: brier, max_drop: 0.01, baseline: previous, significant: true}]\n",
         "tally: error: checks[0].significant: brier has no standard error"),
        (JOB + "checks: [{metric: roc_auc, minimum: 0.8}]\n",
         "tally: error: unknown key 'checks[0].minimum'"),
        (JOB + "output: {table: 'tally.metrics; DROP TABLE tally.metrics'}\n",
         "tally: error: 'output.table' must be a table name"),
        (JOB, "tally: error: config"),
    ],
)
def test_cli_check_config_errors_exit_2(tmp_path, capsys, text, message):
    code, err = _cli(tmp_path, capsys, text)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith(message)
    assert "Spark" not in err


def test_cli_evaluate_refuses_a_table_name_with_sql_before_spark(tmp_path, capsys):
    code, err = _cli(tmp_path, capsys, JOB + "output: {table: 'tally.metrics; DROP TABLE x'}\n",
                     command="evaluate")
    assert code == 2 and "'output.table' must be a table name" in err


def test_every_registered_task_declares_its_check_metrics() -> None:
    from tally.checks_config import METRIC_SHAPES
    from tally.tasks import TASKS

    assert set(METRIC_SHAPES) == set(TASKS)
