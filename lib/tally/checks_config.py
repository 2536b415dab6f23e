"""``checks:`` of a job config: which metrics a check may name, and parsing the list.

Runs with the rest of :mod:`tally.config`, before Spark starts: an unknown metric
(with the nearest name suggested), a bound that does not fit the metric, or a
threshold, class, slice or score column the job does not produce raises
:class:`~tally.errors.ConfigError` naming ``checks[i].<key>``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tally.checks import (
    ALL_ROWS,
    BASELINE_STATISTICS,
    BOUNDS,
    CHANGE_BOUNDS,
    SIGNIFICANT_BOUNDS,
    STD_ERROR_OF,
    Baseline,
    Check,
)
from tally.config_values import check_keys as _check_keys
from tally.config_values import is_number as _is_number
from tally.config_values import type_name as _type_name
from tally.errors import ConfigError
from tally.kernels.validity import (
    INVALID_REASONS,
    MULTICLASS_INVALID_REASONS,
    MULTILABEL_INVALID_REASONS,
)


class ParsedConfig(Protocol):
    """What checks are validated against: a parsed :class:`tally.config.JobConfig` (this
    module is part of parsing it, so it names the fields it reads instead of importing it)."""

    task: str
    classes: tuple[str, ...]
    slices: tuple[tuple[str, ...], ...]
    compare: tuple[tuple[str, str], ...]
    group_key: str | None
    columns: Any  # ColumnsConfig: .scores
    metrics: Any  # MetricsConfig: .thresholds, .top_k, .beta, .auc

CHECK_KEYS = (
    "metric",
    *BOUNDS,
    "baseline",
    "significant",
    "slice",
    "threshold",
    "class",
    "score_column",
)
#: Baseline forms: ``previous`` (the previous nightly run) or ``last_<N>_nights`` (mean).
_LAST_NIGHTS = re.compile(r"last_([1-9][0-9]*)_nights?")
_BASELINE_KEYS = ("nights", "statistic")
MAX_BASELINE_NIGHTS = 366
#: Metrics of the ``"a vs b"`` score column of a paired comparison (``compare:``).
COMPARISON_METRICS = ("auc_diff", "auc_diff_std", "auc_diff_p_value")


@dataclass(frozen=True)
class Shape:
    """Where a metric's rows carry a threshold (or top-k ``k``) and a class."""

    thresholded: bool = False
    per_class: bool = False


_PLAIN, _AT, _CLASS, _AT_CLASS = Shape(), Shape(True), Shape(per_class=True), Shape(True, True)


def _shaped(shape: Shape, *names: str) -> dict[str, Shape]:
    return dict.fromkeys(names, shape)


def metric_shapes(config: ParsedConfig) -> dict[str, Shape]:
    """Every metric the job writes for its task and options (docs/metrics.md).

    Looked up by task name in :data:`METRIC_SHAPES`; a task without an entry is an error,
    never another task's metrics (a test holds the keys to the task registry).
    """
    try:
        shapes_of = METRIC_SHAPES[config.task]
    except KeyError:
        raise ValueError(f"no check metrics are declared for task {config.task!r}") from None
    return shapes_of(config)


def _multilabel_shapes(config: ParsedConfig) -> dict[str, Shape]:
    return {
        **_shaped(_PLAIN, "count", "invalid_rows", "macro_roc_auc", "map"),
        **_shaped(_PLAIN, *(f"invalid_rows_{r}" for r in MULTILABEL_INVALID_REASONS)),
        **_shaped(_CLASS, "roc_auc", "roc_auc_error_bound", "average_precision"),
        **_shaped(_AT, "cp", "cr", "cf1", "op", "or", "of1", "macro_f1", "micro_f1"),
        **_shaped(_AT, "subset_accuracy", "hamming_loss"),
        **_shaped(_AT_CLASS, "tp", "fp", "fn", "tn", "precision", "recall", "f1", "support"),
    }


def _multiclass_shapes(config: ParsedConfig) -> dict[str, Shape]:
    return {
        **_shaped(_PLAIN, "count", "invalid_rows", "accuracy", "mpa", "miou", "fwiou"),
        **_shaped(_PLAIN, "macro_f1", "micro_f1", "weighted_f1", "cohen_kappa"),
        **_shaped(_PLAIN, *(f"invalid_rows_{r}" for r in MULTICLASS_INVALID_REASONS)),
        **_shaped(_CLASS, "recall", "precision", "f1", "iou", "support", "confusion"),
        **_shaped(_AT, *(["top_k_accuracy"] if config.metrics.top_k else [])),
    }


def _binary_shapes(config: ParsedConfig) -> dict[str, Shape]:
    shapes = {
        **_shaped(_PLAIN, "count", "positives", "negatives", "invalid_rows", "pr_auc"),
        **_shaped(_PLAIN, "roc_auc", "roc_auc_error_bound", "roc_auc_std", "roc_auc_ci_low"),
        **_shaped(_PLAIN, "roc_auc_ci_high", "best_f1", "best_f1_threshold", "log_loss"),
        **_shaped(_PLAIN, "brier", "ece", "mce", "merged_slice_values"),
        **_shaped(_PLAIN, *(f"invalid_rows_{r}" for r in INVALID_REASONS)),
        **_shaped(_AT, "tp", "fp", "tn", "fn", "precision", "recall", "specificity", "f1"),
        **_shaped(_AT, "accuracy", "balanced_accuracy", "mcc"),
        **_shaped(_AT, *(["f_beta"] if config.metrics.beta is not None else [])),
        **_shaped(_PLAIN, *(["auc_passes"] if config.metrics.auc == "exact" else [])),
        **_shaped(_PLAIN, *(COMPARISON_METRICS if config.compare else [])),
    }
    if config.group_key is not None:
        shapes.update(_shaped(_PLAIN, "gauc", "gauc_groups_used", "gauc_groups_skipped"))
        shapes.update(_shaped(_PLAIN, "gauc_rows_null_key", "ois_f1", "ois_f1_groups_used"))
        shapes.update(_shaped(_PLAIN, "ois_f1_groups_skipped"))
    return shapes


#: Task name -> the metrics (and their shapes) that task's job writes, for the checks.
METRIC_SHAPES: Mapping[str, Callable[[ParsedConfig], dict[str, Shape]]] = {
    "binary": _binary_shapes,
    "multilabel": _multilabel_shapes,
    "multiclass": _multiclass_shapes,
}


def score_columns_of(metric: str, config: ParsedConfig) -> tuple[str, ...]:
    """The score columns whose rows hold ``metric``: comparisons hold the ``auc_diff*``."""
    if metric in COMPARISON_METRICS:
        return tuple(f"{a} vs {b}" for a, b in config.compare)
    return config.columns.scores


def parse_checks(raw: Any, config: ParsedConfig) -> tuple[Check, ...]:
    """Validate ``checks:`` (a list of mappings) against what ``config`` produces."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"checks must be a list of mappings, got {_type_name(raw)}")
    shapes = metric_shapes(config)
    return tuple(_parse_check(entry, f"checks[{i}]", config, shapes) for i, entry in
                 enumerate(raw))


def _parse_check(
    raw: Any, where: str, config: ParsedConfig, shapes: Mapping[str, Shape]
) -> Check:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping like {{metric: roc_auc, min: 0.8}}, "
                          f"got {_type_name(raw)}")
    _check_keys(raw, CHECK_KEYS, f"{where}.")
    metric = _metric(raw, where, shapes)
    bound, amount = _bound(raw, where, metric)
    baseline = _baseline(raw.get("baseline"), where)
    if (bound in CHANGE_BOUNDS) != (baseline is not None):
        if baseline is None:
            raise ConfigError(f"{where}: {bound} needs a baseline (e.g. baseline: last_7_nights)")
        raise ConfigError(f"{where}: {bound} takes no baseline (max_drop, max_rise... do)")
    significant = raw.get("significant", False)
    if not isinstance(significant, bool):
        raise ConfigError(f"{where}.significant must be true or false, got {significant!r}")
    if significant:
        _check_significant(where, metric, bound, config)
    score_column = _score_column(raw, where, metric, config)
    return Check(
        metric=metric,
        bound=bound,
        amount=amount,
        slice=_slice(raw, where, config),
        threshold=_threshold(raw, where, metric, shapes[metric], config),
        class_=_class(raw, where, metric, shapes[metric], config),
        score_column=score_column,
        baseline=baseline,
        significant=significant,
    )


def _metric(raw: Mapping[str, Any], where: str, shapes: Mapping[str, Shape]) -> str:
    metric = raw.get("metric")
    if metric is None:
        raise ConfigError(f"missing required key '{where}.metric'")
    if not isinstance(metric, str):
        raise ConfigError(f"{where}.metric must be a metric name, got {metric!r}")
    if metric not in shapes:
        close = difflib.get_close_matches(metric, list(shapes), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(
            f"{where}.metric: '{metric}' is not a metric this job writes{hint} "
            "(see docs/metrics.md)"
        )
    return metric


def _bound(raw: Mapping[str, Any], where: str, metric: str) -> tuple[str, float]:
    given = [b for b in BOUNDS if b in raw]
    if len(given) != 1:
        found = f"{len(given)} ({', '.join(given)})" if given else "none"
        raise ConfigError(
            f"{where} needs exactly one bound of {', '.join(BOUNDS)}; found {found}. "
            "Write one check per bound."
        )
    bound = given[0]
    amount = raw[bound]
    if not _is_number(amount) or amount != amount:
        raise ConfigError(f"{where}.{bound} must be a number, got {amount!r}")
    if bound not in ("min", "max") and amount < 0:
        raise ConfigError(f"{where}.{bound} must be at least 0, got {amount!r}")
    if bound == "max_ratio" and not metric.startswith("invalid_rows"):
        raise ConfigError(
            f"{where}.max_ratio is for invalid_rows and invalid_rows_<reason> (a share of "
            f"the rows read), not {metric}"
        )
    return bound, float(amount)


def _baseline(raw: Any, where: str) -> Baseline | None:
    """``previous``, ``last_7_nights`` or ``{nights: 7, statistic: mean|last}``."""
    if raw is None:
        return None
    if raw == "previous":
        return Baseline(1, "last")
    if isinstance(raw, str) and (match := _LAST_NIGHTS.fullmatch(raw)):
        return Baseline(_nights(int(match.group(1)), where), "mean")
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{where}.baseline must be 'previous', 'last_<N>_nights' or "
            f"{{nights: N, statistic: mean|last}}, got {raw!r}"
        )
    _check_keys(raw, _BASELINE_KEYS, f"{where}.baseline.")
    nights = raw.get("nights")
    if isinstance(nights, bool) or not isinstance(nights, int):
        raise ConfigError(f"{where}.baseline.nights must be an integer, got {nights!r}")
    statistic = raw.get("statistic", "mean")
    if statistic not in BASELINE_STATISTICS:
        raise ConfigError(
            f"{where}.baseline.statistic must be one of {list(BASELINE_STATISTICS)}, "
            f"got {statistic!r}"
        )
    return Baseline(_nights(nights, where), statistic)


def _nights(nights: int, where: str) -> int:
    if not 1 <= nights <= MAX_BASELINE_NIGHTS:
        raise ConfigError(
            f"{where}.baseline must span 1 to {MAX_BASELINE_NIGHTS} nights, got {nights}"
        )
    return nights


def _check_significant(where: str, metric: str, bound: str, config: ParsedConfig) -> None:
    if metric not in STD_ERROR_OF or config.task != "binary":
        with_se = ", ".join(STD_ERROR_OF)
        raise ConfigError(
            f"{where}.significant: {metric} has no standard error in the results "
            f"(significant: true is for {with_se} of task binary)"
        )
    if bound not in SIGNIFICANT_BOUNDS:
        raise ConfigError(
            f"{where}.significant goes with {' or '.join(SIGNIFICANT_BOUNDS)}, not {bound}"
        )


def _score_column(
    raw: Mapping[str, Any], where: str, metric: str, config: ParsedConfig
) -> str | None:
    name = raw.get("score_column")
    columns = score_columns_of(metric, config)
    if name is not None and name not in columns:
        raise ConfigError(
            f"{where}.score_column: {metric} is written for {list(columns)}, not {name!r}"
        )
    return name


def _slice(raw: Mapping[str, Any], where: str, config: ParsedConfig) -> str:
    """``ALL`` or a slice label ``col=value[/col=value]`` of a configured ``slices`` spec."""
    label = raw.get("slice", ALL_ROWS)
    if not isinstance(label, str) or not label:
        raise ConfigError(f"{where}.slice must be a slice label such as 'country=US', "
                          f"got {label!r}")
    if label == ALL_ROWS:
        return label
    patterns = ["/".join(f"{re.escape(c)}=.*" for c in spec) for spec in config.slices]
    if not any(re.fullmatch(p, label, flags=re.S) for p in patterns):
        specs = ", ".join("/".join(f"{c}=…" for c in spec) for spec in config.slices) or "none"
        raise ConfigError(
            f"{where}.slice '{label}' is not ALL nor a label of the configured slices "
            f"({specs})"
        )
    return label


def _threshold(
    raw: Mapping[str, Any], where: str, metric: str, shape: Shape, config: ParsedConfig
) -> float | None:
    """The threshold (``top_k_accuracy``: the k) of a thresholded metric; the only one when
    the job has one."""
    choices = _threshold_choices(metric, config)
    value = raw.get("threshold")
    if not shape.thresholded:
        if value is not None:
            raise ConfigError(f"{where}.threshold: {metric} has no threshold")
        return None
    if value is None:
        if len(choices) == 1:
            return choices[0]
        raise ConfigError(
            f"{where} needs a threshold: {metric} is written at {_numbers(choices)}"
        )
    if not _is_number(value) or float(value) not in choices:
        raise ConfigError(
            f"{where}.threshold: {metric} is written at {_numbers(choices)}, not {value!r}"
        )
    return float(value)


def _threshold_choices(metric: str, config: ParsedConfig) -> tuple[float, ...]:
    if metric == "top_k_accuracy":
        return tuple(float(k) for k in config.metrics.top_k)
    return config.metrics.thresholds


def _numbers(values: tuple[float, ...]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


def _class(
    raw: Mapping[str, Any], where: str, metric: str, shape: Shape, config: ParsedConfig
) -> str | None:
    """The class of a per-class metric (``confusion``: ``true→predicted``)."""
    value = raw.get("class")
    if not shape.per_class:
        if value is not None:
            raise ConfigError(f"{where}.class: {metric} is not a per-class metric")
        return None
    if value is None:
        raise ConfigError(f"{where} needs a class: {metric} is written per class")
    name = str(value)
    parts = name.split("→") if metric == "confusion" else [name]
    if len(parts) != (2 if metric == "confusion" else 1) or any(
        p not in config.classes for p in parts
    ):
        what = "'<true>→<predicted>' of the classes" if metric == "confusion" else "one of"
        raise ConfigError(
            f"{where}.class must be {what} {list(config.classes)}, got {value!r}"
        )
    return name
