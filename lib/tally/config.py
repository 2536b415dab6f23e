"""Load and validate a Tally job config (YAML) into frozen, typed objects.

Everything here runs before Spark starts: an unknown key (with the closest
valid spelling suggested), a wrong type, a missing required key or an
out-of-range value raises :class:`~tally.errors.ConfigError` naming the key.

Example::

    model: demo
    input: {path: data/demo, format: parquet}   # or {table: db.name}, or {query: SELECT ...}
    columns: {label: label, score: score}
    metrics: {buckets: 65536, thresholds: [0.5]}
    output: {table: tally.metrics}
    on_invalid: skip                             # or fail
    checks: [{metric: roc_auc, min: 0.8}]        # gates: see tally.checks_config

Table names (``output.*``, ``input.table``) are ``[catalog.][db.]table`` with parts
of letters, digits and underscores, or backquoted (a backquote inside doubled).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from tally.checks import Check
from tally.checks_config import parse_checks
from tally.config_values import check_keys as _check_keys
from tally.config_values import is_number as _is_number
from tally.config_values import type_name as _type_name
from tally.errors import ConfigError
from tally.run_date import check_placeholders

MAX_BUCKETS = 1 << 22  # 4,194,304 buckets: two int64 arrays of 32 MiB each
DEFAULT_BUCKETS = 1 << 16
DEFAULT_OUTPUT_TABLE = "tally.metrics"
DEFAULT_COUNTS_TABLE = "tally.counts"
DEFAULT_CURVES_TABLE = "tally.curves"
DEFAULT_CHECKS_TABLE = "tally.checks"
#: ``[catalog.][db.]table``: parts of letters, digits and ``_``, or backquoted (``` `` ``` inside)
_NAME_PART = r"(?:[A-Za-z0-9_]+|`(?:[^`]|``)+`)"
TABLE_NAME = re.compile(rf"{_NAME_PART}(?:\.{_NAME_PART}){{0,2}}")
DEFAULT_MAX_SLICES = 1000
MAX_CLASSES = 10_000
#: multi-label default: buckets per class so that K × B stays at most 2**20 cells
MULTILABEL_CELL_BUDGET = 1 << 20
ON_INVALID_CHOICES = ("skip", "fail")
AUC_MODES = ("bucketed", "exact")
#: Who reads the input rows (see tally.spark.readers).
READERS = ("auto", "spark", "arrow")
SCORE_TRANSFORMS = ("none", "sigmoid")


@dataclass(frozen=True)
class InputConfig:
    """Where the scored rows come from: a path with a format, a catalog table, or a query.

    ``where`` and ``query`` hold run-date placeholders (:mod:`tally.run_date`) as
    written; the job fills them for its ``--run-date``.
    """

    path: str | None = None
    format: str = "parquet"
    table: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    #: who reads the rows: "auto" (arrow where it can, else spark), "spark" (Spark's
    #: reader, Spark SQL counting) or "arrow" (pyarrow in the Python workers; Parquet only)
    reader: str = "auto"
    #: a Spark SQL predicate on the rows of ``path`` or ``table``, e.g. ``ds = '{run_date}'``
    where: str | None = None
    #: a whole Spark SQL SELECT instead of ``path``/``table`` (joins, unions)
    query: str | None = None
    #: True: a run whose input holds no rows writes counts of zero; False: InputError (exit 3)
    allow_empty: bool = False


@dataclass(frozen=True)
class ColumnsConfig:
    """Names of the input columns: a 0/1 label, one or more scores in [0, 1], a weight."""

    label: str
    scores: tuple[str, ...]
    weight: str | None = None
    #: multiclass: "prediction" (int column), "scores" (array, argmax) or "pixels" (arrays)
    multiclass_input: str | None = None


@dataclass(frozen=True)
class MetricsConfig:
    """Histogram resolution and the thresholds at which thresholded metrics are computed."""

    buckets: int = DEFAULT_BUCKETS
    thresholds: tuple[float, ...] = (0.5,)
    beta: float | None = None
    top_k: tuple[int, ...] = ()
    ci_level: float = 0.95
    calibration_bins: int = 10
    #: "bucketed" (one pass) or "exact" (refinement passes until the bound is <= auc_tolerance)
    auc: str = "bucketed"
    auc_tolerance: float = 0.0
    auc_max_passes: int = 10
    auc_cell_budget: int = 1 << 20


@dataclass(frozen=True)
class OutputConfig:
    """The results, counts, curves and checks tables (each created on first use)."""

    table: str = DEFAULT_OUTPUT_TABLE
    counts_table: str = DEFAULT_COUNTS_TABLE
    curves_table: str = DEFAULT_CURVES_TABLE
    checks_table: str = DEFAULT_CHECKS_TABLE


@dataclass(frozen=True)
class JobConfig:
    """A validated job config. Build it with :func:`load_config` or :func:`parse_config`."""

    model: str
    input: InputConfig
    columns: ColumnsConfig
    metrics: MetricsConfig = MetricsConfig()
    output: OutputConfig = OutputConfig()
    on_invalid: str = "skip"
    slices: tuple[tuple[str, ...], ...] = ()
    max_slices_per_spec: int = DEFAULT_MAX_SLICES
    task: str = "binary"
    classes: tuple[str, ...] = ()
    #: pairs of score columns compared with DeLong's paired test (binary only)
    compare: tuple[tuple[str, str], ...] = ()
    #: "sigmoid": scores are logits, evaluated as 1 / (1 + exp(-score))
    score_transform: str = "none"
    #: group metrics (gauc, ois_f1) over this key column, or None
    group_key: str | None = None
    #: gates on this run's metrics, evaluated after the results are written
    checks: tuple[Check, ...] = ()


# Allowed keys per section; a key missing here is "unknown" and gets a suggestion.
_TOP_KEYS = (
    "model",
    "task",
    "classes",
    "input",
    "columns",
    "metrics",
    "output",
    "on_invalid",
    "slices",
    "max_slices_per_spec",
    "compare",
    "score_transform",
    "groups",
    "checks",
)
TASKS = ("binary", "multilabel", "multiclass")
_INPUT_KEYS = ("path", "format", "table", "query", "where", "options", "reader", "allow_empty")
_COLUMNS_KEYS = ("label", "score", "weight", "labels", "scores", "prediction", "predictions")
_METRICS_KEYS = (
    "buckets",
    "thresholds",
    "beta",
    "top_k",
    "ci_level",
    "calibration_bins",
    "auc",
    "auc_tolerance",
    "auc_max_passes",
    "auc_cell_budget",
)
_GROUPS_KEYS = ("key",)
_OUTPUT_KEYS = ("table", "counts_table", "curves_table", "checks_table")


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> JobConfig:
    """Read a YAML file, apply ``key.sub=value`` overrides, and validate it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {_one_line(exc)}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a YAML mapping at the top level")
    for override in overrides:
        apply_override(raw, override)
    return parse_config(raw)


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Apply one ``--set key.sub=value`` to a raw config; the value is parsed as YAML."""
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key=value, got {override!r}")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: value is not valid YAML: {_one_line(exc)}") from exc
    parts = key.strip().split(".")
    node = raw
    for depth, part in enumerate(parts[:-1]):
        if node.get(part) is None:  # absent, or an empty section (`metrics:`) in the YAML
            node[part] = {}
        child = node[part]
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: '{'.'.join(parts[: depth + 1])}' is not a mapping")
        node = child
    node[parts[-1]] = value


def parse_config(raw: Mapping[str, Any]) -> JobConfig:
    """Validate a raw mapping (as loaded from YAML) into a :class:`JobConfig`."""
    _check_keys(raw, _TOP_KEYS, "")
    model = _require_str(raw, "model", "model")
    on_invalid = _optional_str(raw, "on_invalid", "on_invalid", "skip")
    if on_invalid not in ON_INVALID_CHOICES:
        raise ConfigError(
            f"on_invalid must be one of {list(ON_INVALID_CHOICES)}, got {on_invalid!r}"
        )
    max_slices = raw.get("max_slices_per_spec", DEFAULT_MAX_SLICES)
    if isinstance(max_slices, bool) or not isinstance(max_slices, int) or max_slices < 1:
        raise ConfigError(f"max_slices_per_spec must be a positive integer, got {max_slices!r}")
    task = _optional_str(raw, "task", "task", "binary")
    if task not in TASKS:
        raise ConfigError(f"task must be one of {list(TASKS)}, got {task!r}")
    classes = _parse_classes(raw.get("classes"), task)
    columns = _parse_columns(_section(raw, "columns", required=True), task)
    metrics = _parse_metrics(_section(raw, "metrics", required=False), task, len(classes))
    if metrics.top_k and columns.multiclass_input != "scores":
        raise ConfigError("metrics.top_k needs task multiclass with columns.scores")
    if any(k > len(classes) for k in metrics.top_k):
        raise ConfigError(f"metrics.top_k values must be at most the {len(classes)} classes")
    if metrics.auc == "exact" and task != "binary":
        raise ConfigError(f"metrics.auc: exact is for task binary, not {task}")
    score_transform = _optional_str(raw, "score_transform", "score_transform", "none")
    if score_transform not in SCORE_TRANSFORMS:
        raise ConfigError(
            f"score_transform must be one of {list(SCORE_TRANSFORMS)}, got {score_transform!r}"
        )
    if score_transform != "none" and task != "binary":
        raise ConfigError(f"score_transform is for task binary, not {task}")
    groups = _section(raw, "groups", required=False)
    _check_keys(groups, _GROUPS_KEYS, "groups.")
    group_key = _optional_str(groups, "key", "groups.key", None)
    if groups and group_key is None:
        raise ConfigError("missing required key 'groups.key'")
    if group_key is not None and task != "binary":
        raise ConfigError(f"groups (gauc, ois_f1) are for task binary, not {task}")
    config = JobConfig(
        model=model,
        task=task,
        classes=classes,
        input=_parse_input(_section(raw, "input", required=True)),
        columns=columns,
        metrics=metrics,
        output=_parse_output(_section(raw, "output", required=False)),
        on_invalid=on_invalid,
        slices=_parse_slices(raw.get("slices")),
        max_slices_per_spec=max_slices,
        compare=_parse_compare(raw.get("compare"), columns, task),
        score_transform=score_transform,
        group_key=group_key,
    )
    return replace(config, checks=parse_checks(raw.get("checks"), config))


def parse_run_date(text: str) -> dt.date:
    """Parse ``--run-date`` (YYYY-MM-DD) or raise a ConfigError naming the value."""
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ConfigError(f"--run-date must be a date YYYY-MM-DD, got {text!r}") from None


def _parse_input(raw: Mapping[str, Any]) -> InputConfig:
    _check_keys(raw, _INPUT_KEYS, "input.")
    path = _optional_str(raw, "path", "input.path", None)
    table = _optional_table(raw, "table", "input.table", None)
    query = _optional_str(raw, "query", "input.query", None)
    if [path, table, query].count(None) != 2:
        raise ConfigError("input needs exactly one of input.path, input.table or input.query")
    where = _optional_str(raw, "where", "input.where", None)
    if where is not None:
        if query is not None:
            raise ConfigError(
                "input.where filters input.path or input.table; with input.query "
                "write the condition in the query's WHERE"
            )
        check_placeholders(where, "input.where")
    if query is not None:
        _check_query(query)
    allow_empty = raw.get("allow_empty", False)
    if not isinstance(allow_empty, bool):
        raise ConfigError(f"input.allow_empty must be true or false, got {allow_empty!r}")
    options = raw.get("options", {})
    if not isinstance(options, Mapping):
        raise ConfigError(f"input.options must be a mapping, got {_type_name(options)}")
    for k, v in options.items():
        if isinstance(v, (dict, list)) or v is None:
            raise ConfigError(f"input.options.{k} must be a string, number or boolean, got {v!r}")
    reader = _optional_str(raw, "reader", "input.reader", "auto")
    if reader not in READERS:
        raise ConfigError(f"input.reader must be one of {list(READERS)}, got {reader!r}")
    if query is not None and reader == "arrow":
        raise ConfigError(
            "input.reader: arrow reads the files of input.path or input.table; "
            "input.query is read by Spark (reader auto or spark)"
        )
    return InputConfig(
        path=path,
        table=table,
        query=query,
        where=where,
        allow_empty=allow_empty,
        reader=reader,
        format=_optional_str(raw, "format", "input.format", "parquet"),
        options=MappingProxyType(
            {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in options.items()}
        ),
    )


#: First word of ``input.query`` (after comments): statements that only read.
_QUERY_START = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*(?P<word>\(|[A-Za-z]+)", re.DOTALL)
_QUERY_WORDS = ("select", "with", "from", "values", "table", "(")


def _check_query(query: str) -> None:
    """``input.query`` reads: it starts with SELECT, WITH, FROM, VALUES, TABLE or ``(``.

    The job runs it as a subquery (``SELECT * FROM (<query>)``), which Spark's parser
    refuses for anything that writes; this check only says so before Spark starts.
    """
    start = _QUERY_START.match(query)
    word = start.group("word").lower() if start else ""
    if word not in _QUERY_WORDS:
        raise ConfigError(
            f"input.query must be a SELECT (or WITH ... SELECT), got one starting "
            f"{query.strip()[:40]!r}"
        )
    check_placeholders(query, "input.query")


#: Per task: (label key, output key, what a multiclass output holds), in order of preference.
TASK_COLUMNS = {
    "binary": (("label", "score", None),),
    "multilabel": (("labels", "scores", None),),
    "multiclass": (
        ("label", "prediction", "prediction"),
        ("label", "scores", "scores"),
        ("labels", "predictions", "pixels"),
    ),
}


def _parse_columns(raw: Mapping[str, Any], task: str) -> ColumnsConfig:
    _check_keys(raw, _COLUMNS_KEYS, "columns.")
    shapes = TASK_COLUMNS[task]
    shape = next((sh for sh in shapes if sh[0] in raw and sh[1] in raw), None)
    if shape is None:
        if len(shapes) == 1:
            missing = next(k for k in shapes[0][:2] if k not in raw)
            raise ConfigError(f"missing required key 'columns.{missing}' (task {task})")
        wanted = " or ".join(f"columns.{a} + columns.{b}" for a, b, _ in shapes)
        raise ConfigError(f"task {task} needs {wanted}")
    label_key, output_key, kind = shape
    others = [k for k in raw if k not in (label_key, output_key, "weight")]
    if others:
        raise ConfigError(
            f"'columns.{others[0]}' is not used by task {task} "
            f"(it takes columns.{label_key}, columns.{output_key}, columns.weight)"
        )
    return ColumnsConfig(
        label=_require_str(raw, label_key, f"columns.{label_key}"),
        scores=_column_list(raw, output_key),
        weight=_optional_str(raw, "weight", "columns.weight", None),
        multiclass_input=kind,
    )


def _column_list(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    """One column name, or a list of them (several models evaluated in one scan)."""
    if not isinstance(raw.get(key), list):
        return (_require_str(raw, key, f"columns.{key}"),)
    names = raw[key]
    if not names:
        raise ConfigError(f"'columns.{key}' must name at least one column")
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"'columns.{key}[{i}]' must be a column name, got {name!r}")
    if len(set(names)) != len(names):
        raise ConfigError(f"'columns.{key}' lists a column twice: {names}")
    return tuple(names)


def _parse_classes(raw: Any, task: str) -> tuple[str, ...]:
    """``classes: [cat, dog, bird]`` or ``classes: 3`` (names "0".."2"); not for binary."""
    if task == "binary":
        if raw is not None:
            raise ConfigError("'classes' is only used by task multilabel or multiclass")
        return ()
    if raw is None:
        raise ConfigError(f"task {task} needs 'classes': a list of class names or their number")
    if isinstance(raw, int) and not isinstance(raw, bool):
        if not 1 <= raw <= MAX_CLASSES:
            raise ConfigError(f"classes must be between 1 and {MAX_CLASSES}, got {raw}")
        return tuple(str(i) for i in range(raw))
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"classes must be a non-empty list of names or a number, got {raw!r}")
    if len(raw) > MAX_CLASSES:
        raise ConfigError(f"classes lists {len(raw)} names; at most {MAX_CLASSES}")
    names = [str(c) for c in raw]
    if len(set(names)) != len(names):
        raise ConfigError(f"classes lists a name twice: {names}")
    return tuple(names)


def _parse_compare(
    raw: Any, columns: ColumnsConfig, task: str
) -> tuple[tuple[str, str], ...]:
    """``compare: [[score_v7, score_v8]]``: pairs of configured score columns (binary only)."""
    if raw is None:
        return ()
    if task != "binary":
        raise ConfigError(f"compare is for task binary, not {task}")
    if not isinstance(raw, list):
        raise ConfigError(f"compare must be a list of [first, second] pairs, got {_type_name(raw)}")
    pairs = []
    for i, pair in enumerate(raw):
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(c, str) for c in pair)
            or pair[0] == pair[1]
        ):
            raise ConfigError(f"compare[{i}] must be a pair of two score columns, got {pair!r}")
        for name in pair:
            if name not in columns.scores:
                raise ConfigError(
                    f"compare[{i}] names '{name}', which is not in columns.score "
                    f"{list(columns.scores)}"
                )
        pairs.append((pair[0], pair[1]))
    return tuple(pairs)


def _parse_slices(raw: Any) -> tuple[tuple[str, ...], ...]:
    """``slices: [[country], [country, device]]``; a bare name stands for a one-column spec."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"slices must be a list of column lists, got {_type_name(raw)}")
    specs = []
    for i, spec in enumerate(raw):
        columns = [spec] if isinstance(spec, str) else spec
        if (
            not isinstance(columns, list)
            or not columns
            or not all(isinstance(c, str) and c.strip() for c in columns)
        ):
            raise ConfigError(f"slices[{i}] must be a non-empty list of column names, got {spec!r}")
        if len(set(columns)) != len(columns):
            raise ConfigError(f"slices[{i}] names a column twice: {columns}")
        specs.append(tuple(columns))
    if len(set(specs)) != len(specs):
        raise ConfigError(f"slices lists the same spec twice: {raw}")
    return tuple(specs)


def _parse_metrics(raw: Mapping[str, Any], task: str = "binary", classes: int = 0) -> MetricsConfig:
    _check_keys(raw, _METRICS_KEYS, "metrics.")
    default_buckets = DEFAULT_BUCKETS
    if task == "multilabel":  # the largest power of two with K × B <= 2**20, at most 65536
        per_class = MULTILABEL_CELL_BUDGET // max(classes, 1)
        default_buckets = min(DEFAULT_BUCKETS, 1 << max(per_class.bit_length() - 1, 0))
    buckets = raw.get("buckets", default_buckets)
    if isinstance(buckets, bool) or not isinstance(buckets, int):
        raise ConfigError(
            f"metrics.buckets must be an integer, got {_type_name(buckets)} {buckets!r}"
        )
    if not 1 <= buckets <= MAX_BUCKETS:
        raise ConfigError(f"metrics.buckets must be between 1 and {MAX_BUCKETS}, got {buckets}")
    thresholds_raw = raw.get("thresholds", [0.5])
    if not isinstance(thresholds_raw, list):
        raise ConfigError(
            f"metrics.thresholds must be a list of numbers, got {_type_name(thresholds_raw)}"
        )
    thresholds = []
    for i, t in enumerate(thresholds_raw):
        if not _is_number(t) or not 0.0 <= float(t) <= 1.0:
            raise ConfigError(f"metrics.thresholds[{i}] must be a number in [0, 1], got {t!r}")
        thresholds.append(float(t))
    beta = raw.get("beta")
    if beta is not None and (not _is_number(beta) or not math.isfinite(beta) or beta <= 0):
        raise ConfigError(f"metrics.beta must be a positive number, got {beta!r}")
    top_k_raw = raw.get("top_k", [])
    if not isinstance(top_k_raw, list) or not all(
        isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in top_k_raw
    ):
        raise ConfigError(f"metrics.top_k must be a list of positive integers, got {top_k_raw!r}")
    ci_level = raw.get("ci_level", 0.95)
    if not _is_number(ci_level) or not 0 < ci_level < 1:
        raise ConfigError(f"metrics.ci_level must be a number in (0, 1), got {ci_level!r}")
    bins = raw.get("calibration_bins", 10)
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ConfigError(f"metrics.calibration_bins must be a positive integer, got {bins!r}")
    auc = _optional_str(raw, "auc", "metrics.auc", "bucketed")
    if auc not in AUC_MODES:
        raise ConfigError(f"metrics.auc must be one of {list(AUC_MODES)}, got {auc!r}")
    tolerance = raw.get("auc_tolerance", 0.0)
    if not _is_number(tolerance) or not 0 <= tolerance < 1:
        raise ConfigError(f"metrics.auc_tolerance must be a number in [0, 1), got {tolerance!r}")
    max_passes = _int_between(raw, "auc_max_passes", 10, 1, 100)
    cell_budget = _int_between(raw, "auc_cell_budget", 1 << 20, 4, MAX_BUCKETS)
    return MetricsConfig(
        auc=auc,
        auc_tolerance=float(tolerance),
        auc_max_passes=max_passes,
        auc_cell_budget=cell_budget,
        top_k=tuple(sorted(set(top_k_raw))),
        ci_level=float(ci_level),
        calibration_bins=bins,
        buckets=buckets,
        thresholds=tuple(sorted(set(thresholds))),
        beta=None if beta is None else float(beta),
    )


def _int_between(raw: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    """``metrics.<key>``: an integer in ``[low, high]`` (booleans are not integers here)."""
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"metrics.{key} must be an integer from {low} to {high}, got {value!r}")
    return value


def _parse_output(raw: Mapping[str, Any]) -> OutputConfig:
    _check_keys(raw, _OUTPUT_KEYS, "output.")
    return OutputConfig(
        table=_optional_table(raw, "table", "output.table", DEFAULT_OUTPUT_TABLE),
        counts_table=_optional_table(
            raw, "counts_table", "output.counts_table", DEFAULT_COUNTS_TABLE
        ),
        curves_table=_optional_table(
            raw, "curves_table", "output.curves_table", DEFAULT_CURVES_TABLE
        ),
        checks_table=_optional_table(
            raw, "checks_table", "output.checks_table", DEFAULT_CHECKS_TABLE
        ),
    )


def check_table_name(value: str, name: str) -> str:
    """``value`` if it is a table name (:data:`TABLE_NAME`), else a ConfigError naming ``name``.

    Names are never pasted into SQL, but a value such as ``t; DROP TABLE t`` is
    refused here, before Spark starts, rather than by Spark's parser mid-run.
    """
    if not TABLE_NAME.fullmatch(value):
        raise ConfigError(
            f"'{name}' must be a table name [catalog.][db.]table of letters, digits and "
            f"underscores (or a `backquoted` part), got {value!r}"
        )
    return value


def _optional_table(raw: Mapping[str, Any], key: str, name: str, default: str | None) -> str | None:
    value = _optional_str(raw, key, name, default)
    return value if value is None else check_table_name(value, name)


def _section(raw: Mapping[str, Any], key: str, *, required: bool) -> Mapping[str, Any]:
    if key not in raw or raw[key] is None:
        if required:
            raise ConfigError(f"missing required key '{key}'")
        return {}
    value = raw[key]
    if not isinstance(value, Mapping):
        raise ConfigError(f"'{key}' must be a mapping, got {_type_name(value)}")
    return value


def _require_str(raw: Mapping[str, Any], key: str, name: str) -> str:
    if key not in raw or raw[key] is None:
        raise ConfigError(f"missing required key '{name}'")
    return _optional_str(raw, key, name, None)  # type: ignore[return-value]


def _optional_str(raw: Mapping[str, Any], key: str, name: str, default: str | None) -> str | None:
    value = raw.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ConfigError(f"'{name}' must be a string, got {_type_name(value)} {value!r}")
    if not value.strip():
        raise ConfigError(f"'{name}' must not be empty")
    return value


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
