"""Gates on a run's metrics: the rules of ``checks:``, evaluated on stored values (no Spark).

A check compares one metric of one (score column, slice) with a bound. Every rule
reduces to comparing tonight's ``value`` with one number, its ``limit``; a value
exactly at the limit passes.

* Absolute bounds: ``min: a`` (pass when ``value >= a``), ``max: a`` (``value <= a``),
  ``max_ratio: a`` for row counts (``invalid_rows``, ``invalid_rows_<reason>``):
  ``value / rows read <= a``, rows read ``= count + invalid_rows``.
* Change bounds against a baseline ``b``, the mean (or the latest) of the metric's
  values in the previous ``N`` nightly runs of the same model, score column and
  slice (:class:`Baseline`):

  ===================  ===========================  ===============
  bound                limit                        pass when
  ===================  ===========================  ===============
  ``max_drop: a``      ``b − a``                    ``value >= limit``
  ``max_rise: a``      ``b + a``                    ``value <= limit``
  ``max_drop_ratio``   ``b − a·|b|``                ``value >= limit``
  ``max_rise_ratio``   ``b + a·|b|``                ``value <= limit``
  ===================  ===========================  ===============

* ``significant: true`` (``max_drop`` / ``max_rise`` of a metric with a standard
  error, :data:`STD_ERROR_OF`): the change must also exceed the noise, i.e. the
  allowed change is ``max(a, z·σ)`` with ``σ = sqrt(se_tonight² + se_baseline²)``
  and ``z =`` :data:`SIGNIFICANCE_Z` (a two-sided 5% test of "no change" for two
  independent normal estimates). The baseline's standard error is that of the
  night it takes (``last``) or of the mean of ``n`` independent nights
  (``sqrt(Σ se_i²) / n``). Where a standard error is null (fewer than 2 rows of a
  class), the check is judged on ``a`` alone and its message says so.

Nights whose value is null count as missing. With fewer baseline nights than
asked, the check uses those it has and says ``baseline has k of N nights``; with
none it passes with ``no baseline yet``. A missing or null value tonight fails.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tally.plan import ALL_ROWS

#: Bounds a check may set, and whether the value must stay at or above (">=") or at or
#: below ("<=") the limit derived from it.
BOUNDS: Mapping[str, str] = {
    "min": ">=",
    "max": "<=",
    "max_ratio": "<=",
    "max_drop": ">=",
    "max_rise": "<=",
    "max_drop_ratio": ">=",
    "max_rise_ratio": "<=",
}
#: Bounds relative to a baseline (they need ``baseline``).
CHANGE_BOUNDS = ("max_drop", "max_rise", "max_drop_ratio", "max_rise_ratio")
#: Bounds that ``significant: true`` may qualify.
SIGNIFICANT_BOUNDS = ("max_drop", "max_rise")
#: Metric -> the metric holding its standard error in the same run (DeLong for ROC AUC).
STD_ERROR_OF: Mapping[str, str] = {"roc_auc": "roc_auc_std"}
#: ``z`` of ``significant: true``: the two-sided 95% quantile of the standard normal.
SIGNIFICANCE_Z = 1.96
#: What ``max_ratio`` divides by: rows read = valid rows + invalid rows.
ROWS_METRICS = ("count", "invalid_rows")
BASELINE_STATISTICS = ("mean", "last")


@dataclass(frozen=True)
class Baseline:
    """The previous ``nights`` nightly runs, summarised by their ``mean`` or ``last`` value."""

    nights: int
    statistic: str = "mean"

    def describe(self) -> str:
        if self.nights == 1:
            return "the previous night"
        if self.statistic == "last":
            return f"the latest of the last {self.nights} nights"
        return f"the mean of the last {self.nights} nights"


@dataclass(frozen=True)
class Check:
    """One entry of ``checks:``; ``amount`` is the number given to ``bound``.

    ``score_column`` None means every score column the metric exists for.
    """

    metric: str
    bound: str
    amount: float
    slice: str = ALL_ROWS
    threshold: float | None = None
    class_: str | None = None
    score_column: str | None = None
    baseline: Baseline | None = None
    significant: bool = False

    @property
    def key(self) -> tuple[str, float | None, str | None]:
        """(metric, threshold, class): where the value lies in a :data:`Night`."""
        return (self.metric, self.threshold, self.class_)

    def label(self) -> str:
        """The metric as shown: ``recall@0.5``, ``iou[cat]``."""
        at = "" if self.threshold is None else f"@{format_number(self.threshold)}"
        of = "" if self.class_ is None else f"[{self.class_}]"
        return f"{self.metric}{at}{of}"

    def describe(self) -> str:
        """The rule in words: the ``check`` column of the checks table."""
        amount = format_number(self.amount)
        if self.bound == "min":
            return f"{self.label()} >= {amount}"
        if self.bound == "max":
            return f"{self.label()} <= {amount}"
        if self.bound == "max_ratio":
            return f"{self.label()} / rows read <= {amount}"
        change = "drop" if "drop" in self.bound else "rise"
        relative = "relative " if self.bound.endswith("_ratio") else ""
        against = self.baseline.describe() if self.baseline else "a baseline"
        significant = ", if significant" if self.significant else ""
        return f"{self.label()} {relative}{change} <= {amount} vs {against}{significant}"


@dataclass(frozen=True)
class Stored:
    """One number of the results table: None where undefined, with the reason."""

    value: float | None
    reason: str | None = None


#: One run's numbers of one (score column, slice): (metric, threshold, class) -> number.
Night = Mapping[tuple[str, float | None, str | None], Stored]


@dataclass(frozen=True)
class Outcome:
    """One check evaluated on one score column: a row of the checks table."""

    score_column: str
    slice: str
    check: str
    metric: str
    value: float | None
    baseline: float | None
    limit: float | None
    passed: bool
    message: str | None = None

    def line(self, with_score_column: bool = True) -> str:
        """``roc_auc >= 0.8 on ALL: 0.7712``, the score column and message added."""
        where = f"{self.slice} of {self.score_column}" if with_score_column else self.slice
        value = "null" if self.value is None else format_number(self.value, 4)
        more = f" ({self.message})" if self.message else ""
        return f"{self.check} on {where}: {value}{more}"


def format_number(x: float, digits: int = 10) -> str:
    """Integral values without decimals (``1000000``), others with ``digits`` significant."""
    if math.isfinite(x) and x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.{digits}g}"


def evaluate_check(
    check: Check, score_column: str, tonight: Night | None, history: Sequence[Night]
) -> Outcome:
    """Evaluate ``check`` on one score column.

    ``tonight``: this run's numbers of (score column, ``check.slice``), None when the
    run has none; ``history``: the previous nightly runs of the model, newest first
    (an empty mapping where a run has no rows for this score column and slice).
    """
    outcome = _Builder(check, score_column)
    if tonight is None:
        where = f"slice {check.slice} of {score_column}"
        return outcome.fail(None, f"no results for {where} in this run")
    if check.bound == "max_ratio":
        return _ratio_outcome(check, outcome, tonight)
    stored = tonight.get(check.key)
    if stored is None or stored.value is None:
        return outcome.fail(None, _missing(stored))
    value = stored.value
    if check.bound in ("min", "max"):
        return outcome.compare(value, None, check.amount, None)
    return _change_outcome(check, outcome, value, tonight, history)


def _missing(stored: Stored | None) -> str:
    if stored is None:
        return "this run has no such value"
    return f"value is null: {stored.reason or 'no reason given'}"


def _ratio_outcome(check: Check, outcome: _Builder, tonight: Night) -> Outcome:
    """``value / (count + invalid_rows) <= amount``; no rows read passes (nothing invalid)."""
    values: dict[str, float] = {}
    for name in (check.metric, *ROWS_METRICS):
        stored = tonight.get((name, None, None))
        if stored is None or stored.value is None:
            return outcome.fail(None, f"{name}: {_missing(stored)}")
        values[name] = stored.value
    read = values["count"] + values["invalid_rows"]
    if read == 0:
        return outcome.done(None, None, check.amount, True, "no rows read")
    rows = f"{format_number(values[check.metric])} of {format_number(read)} rows read"
    return outcome.compare(values[check.metric] / read, None, check.amount, rows)


def _change_outcome(
    check: Check, outcome: _Builder, value: float, tonight: Night, history: Sequence[Night]
) -> Outcome:
    baseline = check.baseline
    assert baseline is not None, "a change bound has a baseline (checked when parsed)"
    used = [n for n in history[: baseline.nights] if _value(n, check.key) is not None]
    if not used:
        message = f"no baseline yet (0 of {baseline.nights} nights)"
        return outcome.done(value, None, None, True, message)
    notes = [] if len(used) == baseline.nights else [
        f"baseline has {len(used)} of {baseline.nights} nights"
    ]
    if baseline.statistic == "last":
        used = used[:1]
    base = math.fsum(_value(n, check.key) for n in used) / len(used)  # type: ignore[misc]
    allowed = check.amount
    if check.bound.endswith("_ratio"):
        allowed = check.amount * abs(base)
    if check.significant:
        noise, note = _noise(check, tonight, used)
        notes.append(note)
        if noise is not None:
            allowed = max(allowed, SIGNIFICANCE_Z * noise)
    limit = base - allowed if BOUNDS[check.bound] == ">=" else base + allowed
    change = value - base
    notes.insert(0, f"baseline {format_number(base, 4)}, change {change:+.4g}")
    return outcome.compare(value, base, limit, "; ".join(notes))


def _noise(check: Check, tonight: Night, used: Sequence[Night]) -> tuple[float | None, str]:
    """σ of tonight's value minus the baseline, from the standard errors (None if any is null)."""
    se_key = (STD_ERROR_OF[check.metric], check.threshold, check.class_)
    tonight_se = _value(tonight, se_key)
    baseline_se = [_value(n, se_key) for n in used]
    if tonight_se is None or any(se is None for se in baseline_se):
        return None, f"no standard error ({se_key[0]} is null): judged on {check.bound} alone"
    base_var = math.fsum(se * se for se in baseline_se) / len(used) ** 2  # type: ignore[operator]
    sigma = math.sqrt(tonight_se * tonight_se + base_var)
    return sigma, f"{SIGNIFICANCE_Z:g}·σ = {SIGNIFICANCE_Z * sigma:.4g}"


def _value(night: Night, key: tuple[str, float | None, str | None]) -> float | None:
    stored = night.get(key)
    return None if stored is None else stored.value


@dataclass(frozen=True)
class _Builder:
    """Makes the :class:`Outcome` rows of one check on one score column."""

    check: Check
    score_column: str

    def done(
        self,
        value: float | None,
        baseline: float | None,
        limit: float | None,
        passed: bool,
        message: str | None,
    ) -> Outcome:
        return Outcome(
            score_column=self.score_column,
            slice=self.check.slice,
            check=self.check.describe(),
            metric=self.check.metric,
            value=value,
            baseline=baseline,
            limit=limit,
            passed=passed,
            message=message,
        )

    def fail(self, value: float | None, message: str) -> Outcome:
        return self.done(value, None, None, False, message)

    def compare(
        self, value: float, baseline: float | None, limit: float, message: str | None
    ) -> Outcome:
        """Pass when ``value`` is on the allowed side of ``limit`` (NaN never passes)."""
        passed = value >= limit if BOUNDS[self.check.bound] == ">=" else value <= limit
        return self.done(value, baseline, limit, bool(passed), message)
