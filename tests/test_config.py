"""Config loading and validation: typed frozen objects, or a ConfigError naming the key."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest

from tally.config import (
    DEFAULT_BUCKETS,
    DEFAULT_OUTPUT_TABLE,
    MAX_BUCKETS,
    ColumnsConfig,
    InputConfig,
    JobConfig,
    MetricsConfig,
    OutputConfig,
    apply_override,
    load_config,
    parse_config,
    parse_run_date,
)
from tally.errors import ConfigError, TallyError

# The example from the module docstring of tally.config.
EXAMPLE_YAML = """\
model: demo
input: {path: data/demo, format: parquet}   # or {table: db.name}
columns: {label: label, score: score}
metrics: {buckets: 65536, thresholds: [0.5]}
output: {table: tally.metrics}
on_invalid: skip                             # or fail
"""

MINIMAL: dict[str, Any] = {
    "model": "demo",
    "input": {"path": "data/demo"},
    "columns": {"label": "label", "score": "score"},
}


def minimal(**changes: Any) -> dict[str, Any]:
    """A deep copy of MINIMAL with top-level keys replaced (a value of ... deletes the key)."""
    raw = copy.deepcopy(MINIMAL)
    for key, value in changes.items():
        if value is ...:
            del raw[key]
        else:
            raw[key] = value
    return raw


def write(tmp_path: Path, text: str, name: str = "job.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def config_error(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    return str(info.value)


# --- the happy path ---------------------------------------------------------------


def test_docstring_example_parses_to_expected_objects(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, EXAMPLE_YAML))
    assert cfg == JobConfig(
        model="demo",
        input=InputConfig(path="data/demo", format="parquet", table=None, options={}),
        columns=ColumnsConfig(label="label", scores=("score",)),
        metrics=MetricsConfig(buckets=65536, thresholds=(0.5,), beta=None),
        output=OutputConfig(table="tally.metrics"),
        on_invalid="skip",
    )


def test_config_objects_are_frozen(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, EXAMPLE_YAML))
    for obj, attr, value in [
        (cfg, "model", "other"),
        (cfg.input, "path", "elsewhere"),
        (cfg.columns, "label", "y"),
        (cfg.metrics, "buckets", 2),
        (cfg.output, "table", "x.y"),
    ]:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, attr, value)


def test_defaults_for_optional_keys() -> None:
    cfg = parse_config(minimal())
    assert cfg.metrics.buckets == DEFAULT_BUCKETS == 65536
    assert cfg.metrics.thresholds == (0.5,)
    assert cfg.metrics.beta is None
    assert cfg.output.table == DEFAULT_OUTPUT_TABLE == "tally.metrics"
    assert cfg.on_invalid == "skip"
    assert cfg.input.format == "parquet"
    assert cfg.input.table is None
    assert cfg.input.options == {}


def test_null_optional_sections_take_defaults() -> None:
    cfg = parse_config(minimal(metrics=None, output=None, on_invalid=None))
    assert cfg.metrics == MetricsConfig()
    assert cfg.output == OutputConfig()
    assert cfg.on_invalid == "skip"


def test_thresholds_sorted_and_deduplicated() -> None:
    cfg = parse_config(minimal(metrics={"thresholds": [0.9, 0.1, 0.5, 0.1, 0.9, 1, 0]}))
    assert cfg.metrics.thresholds == (0.0, 0.1, 0.5, 0.9, 1.0)
    assert all(isinstance(t, float) for t in cfg.metrics.thresholds)


def test_thresholds_bounds_are_inclusive() -> None:
    cfg = parse_config(minimal(metrics={"thresholds": [0.0, 1.0]}))
    assert cfg.metrics.thresholds == (0.0, 1.0)


def test_input_table_alternative() -> None:
    cfg = parse_config(minimal(input={"table": "db.scored"}))
    assert cfg.input.table == "db.scored"
    assert cfg.input.path is None


def test_input_options_and_format() -> None:
    cfg = parse_config(
        minimal(input={"path": "data/x.csv", "format": "csv", "options": {"header": "true"}})
    )
    assert cfg.input.format == "csv"
    assert cfg.input.options == {"header": "true"}


def test_full_metrics_and_on_invalid_fail() -> None:
    cfg = parse_config(
        minimal(
            metrics={"buckets": 1024, "thresholds": [0.3], "beta": 2},
            output={"table": "db.results"},
            on_invalid="fail",
        )
    )
    assert cfg.metrics == MetricsConfig(buckets=1024, thresholds=(0.3,), beta=2.0)
    assert isinstance(cfg.metrics.beta, float)
    assert cfg.output.table == "db.results"
    assert cfg.on_invalid == "fail"


@pytest.mark.parametrize("buckets", [1, 1024, MAX_BUCKETS])
def test_buckets_in_range(buckets: int) -> None:
    assert parse_config(minimal(metrics={"buckets": buckets})).metrics.buckets == buckets


# --- unknown keys -----------------------------------------------------------------


def test_unknown_top_level_key_suggests_closest() -> None:
    raw = minimal(model=...)
    raw["modle"] = "demo"
    message = config_error(raw)
    assert "'modle'" in message
    assert "did you mean 'model'" in message


def test_unknown_nested_key_suggests_full_name() -> None:
    message = config_error(minimal(metrics={"bucket": 1024}))
    assert "'metrics.bucket'" in message
    assert "did you mean 'metrics.buckets'" in message


@pytest.mark.parametrize(
    ("section", "value", "key"),
    [
        ("input", {"path": "p", "fromat": "csv"}, "input.fromat"),
        ("columns", {"label": "l", "score": "s", "wieght": "w"}, "columns.wieght"),
        ("output", {"tabel": "x.y"}, "output.tabel"),
    ],
)
def test_unknown_key_in_other_sections(section: str, value: dict[str, Any], key: str) -> None:
    assert f"'{key}'" in config_error(minimal(**{section: value}))


def test_unknown_key_without_close_match_lists_valid_keys() -> None:
    raw = minimal()
    raw["zzzzzz"] = 1
    message = config_error(raw)
    assert "'zzzzzz'" in message
    assert "did you mean" not in message
    assert "model" in message and "columns" in message


# --- missing required keys ----------------------------------------------------------


@pytest.mark.parametrize("key", ["model", "input", "columns"])
def test_missing_required_top_level_key(key: str) -> None:
    message = config_error(minimal(**{key: ...}))
    assert "missing" in message
    assert f"'{key}'" in message


@pytest.mark.parametrize("key", ["model", "input", "columns"])
def test_null_required_top_level_key(key: str) -> None:
    assert f"'{key}'" in config_error(minimal(**{key: None}))


@pytest.mark.parametrize("key", ["label", "score"])
def test_missing_required_column(key: str) -> None:
    columns = {"label": "label", "score": "score"}
    del columns[key]
    message = config_error(minimal(columns=columns))
    assert "missing" in message
    assert f"'columns.{key}'" in message


# --- wrong types and values -----------------------------------------------------------


@pytest.mark.parametrize(("value", "shown"), [(3, "int"), (["a"], "list"), (True, "boolean")])
def test_model_must_be_string(value: Any, shown: str) -> None:
    message = config_error(minimal(model=value))
    assert "'model'" in message
    assert "string" in message
    assert shown in message


@pytest.mark.parametrize("value", ["", "   "])
def test_model_must_not_be_empty(value: str) -> None:
    message = config_error(minimal(model=value))
    assert "'model'" in message
    assert "empty" in message


def test_column_name_must_be_string() -> None:
    assert "'columns.score'" in config_error(minimal(columns={"label": "l", "score": 7}))


@pytest.mark.parametrize("section", ["input", "columns", "metrics", "output"])
def test_section_must_be_mapping(section: str) -> None:
    message = config_error(minimal(**{section: ["not", "a", "mapping"]}))
    assert f"'{section}'" in message
    assert "mapping" in message


@pytest.mark.parametrize("value", ["many", 1.5, True, [1024]])
def test_buckets_must_be_integer(value: Any) -> None:
    message = config_error(minimal(metrics={"buckets": value}))
    assert "metrics.buckets" in message
    assert "integer" in message


@pytest.mark.parametrize("value", [0, -1, MAX_BUCKETS + 1, 10**12])
def test_buckets_out_of_range(value: int) -> None:
    message = config_error(minimal(metrics={"buckets": value}))
    assert "metrics.buckets" in message
    assert str(MAX_BUCKETS) in message
    assert str(value) in message


@pytest.mark.parametrize("value", [0.5, "0.5", {"a": 0.5}])
def test_thresholds_must_be_list(value: Any) -> None:
    message = config_error(minimal(metrics={"thresholds": value}))
    assert "metrics.thresholds" in message
    assert "list" in message


@pytest.mark.parametrize(
    ("values", "index"),
    [
        (["x"], 0),
        ([0.2, 1.5], 1),
        ([-0.1], 0),
        ([0.2, 0.4, True], 2),
        ([None], 0),
        ([float("nan")], 0),
        ([float("inf")], 0),
    ],
)
def test_threshold_must_be_number_in_unit_interval(values: list[Any], index: int) -> None:
    message = config_error(minimal(metrics={"thresholds": values}))
    assert f"metrics.thresholds[{index}]" in message
    assert "[0, 1]" in message


@pytest.mark.parametrize("value", [0, -1, "a", 0.0, True, float("nan"), float("inf")])
def test_beta_must_be_positive_number(value: Any) -> None:
    message = config_error(minimal(metrics={"beta": value}))
    assert "metrics.beta" in message
    assert "positive" in message


@pytest.mark.parametrize(
    "value",
    [
        {"path": "p", "table": "db.t"},
        {},
        {"format": "csv"},
        {"path": None},
        {"path": "p", "query": "SELECT 1"},
        {"table": "db.t", "query": "SELECT 1"},
    ],
)
def test_input_needs_exactly_one_of_path_table_or_query(value: dict[str, Any]) -> None:
    message = config_error(minimal(input=value))
    assert "exactly one of input.path, input.table or input.query" in message


@pytest.mark.parametrize("value", [5, ""])
def test_input_path_must_be_nonempty_string(value: Any) -> None:
    assert "'input.path'" in config_error(minimal(input={"path": value}))


@pytest.mark.parametrize("value", [["header=true"], "header=true", 1])
def test_input_options_must_be_mapping(value: Any) -> None:
    message = config_error(minimal(input={"path": "p", "options": value}))
    assert "input.options" in message
    assert "mapping" in message


@pytest.mark.parametrize("value", ["maybe", "Skip", "FAIL"])
def test_on_invalid_choices(value: str) -> None:
    message = config_error(minimal(on_invalid=value))
    assert "on_invalid" in message
    assert repr(value) in message
    assert "skip" in message and "fail" in message


def test_on_invalid_must_be_string() -> None:
    assert "'on_invalid'" in config_error(minimal(on_invalid=1))


def test_output_table_must_be_string() -> None:
    assert "'output.table'" in config_error(minimal(output={"table": 3}))


# --- load_config: files ----------------------------------------------------------------


def test_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="not found") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_load_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path)


def test_load_invalid_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["- model\n- input\n", "just a string\n", "", "42\n"])
def test_load_top_level_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="mapping") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_load_accepts_str_path(tmp_path: Path) -> None:
    assert load_config(str(write(tmp_path, EXAMPLE_YAML))).model == "demo"


def test_load_reports_validation_errors(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE_YAML.replace("buckets: 65536", "buckets: many"))
    with pytest.raises(ConfigError, match=r"metrics\.buckets"):
        load_config(path)


# --- load_config: overrides ---------------------------------------------------------------


def test_override_buckets_is_parsed_as_int(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, EXAMPLE_YAML), ["metrics.buckets=1024"])
    assert cfg.metrics.buckets == 1024
    assert type(cfg.metrics.buckets) is int


def test_override_thresholds_list(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, EXAMPLE_YAML), ["metrics.thresholds=[0.8, 0.2]"])
    assert cfg.metrics.thresholds == (0.2, 0.8)


def test_override_top_level_string(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, EXAMPLE_YAML), ["model=other"])
    assert cfg.model == "other"


def test_overrides_apply_in_order(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, EXAMPLE_YAML),
        ["metrics.buckets=8", "metrics.buckets=16", "on_invalid=fail"],
    )
    assert cfg.metrics.buckets == 16
    assert cfg.on_invalid == "fail"


def test_override_creates_missing_section(tmp_path: Path) -> None:
    text = "model: demo\ninput: {table: db.t}\ncolumns: {label: y, score: p}\n"
    cfg = load_config(write(tmp_path, text), ["metrics.beta=0.5", "input.options.mode=FAST"])
    assert cfg.metrics.beta == 0.5
    assert cfg.input.options == {"mode": "FAST"}


def test_override_switches_input_to_table_needs_path_cleared(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE_YAML)
    with pytest.raises(ConfigError, match="exactly one"):
        load_config(path, ["input.table=db.t"])
    cfg = load_config(path, ["input.table=db.t", "input.path=null"])
    assert cfg.input.table == "db.t"
    assert cfg.input.path is None


def test_override_unknown_nested_key_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, EXAMPLE_YAML), ["metrics.bucket=1024"])
    assert "'metrics.bucket'" in str(info.value)
    assert "did you mean 'metrics.buckets'" in str(info.value)


def test_override_unknown_new_section_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'metric'"):
        load_config(write(tmp_path, EXAMPLE_YAML), ["metric.buckets=1024"])


def test_override_value_is_type_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"metrics\.buckets"):
        load_config(write(tmp_path, EXAMPLE_YAML), ["metrics.buckets=1.5"])


@pytest.mark.parametrize("override", ["novalue", "=5", " =5"])
def test_override_without_key_or_equals(override: str) -> None:
    raw = copy.deepcopy(MINIMAL)
    with pytest.raises(ConfigError, match="key=value") as info:
        apply_override(raw, override)
    assert repr(override) in str(info.value)
    assert raw == MINIMAL


def test_override_without_equals_via_load_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="novalue"):
        load_config(write(tmp_path, EXAMPLE_YAML), ["novalue"])


def test_override_invalid_yaml_value() -> None:
    with pytest.raises(ConfigError, match=r"metrics\.thresholds"):
        apply_override(copy.deepcopy(MINIMAL), "metrics.thresholds=[0.2,")


def test_override_through_non_mapping() -> None:
    with pytest.raises(ConfigError) as info:
        apply_override(copy.deepcopy(MINIMAL), "model.name=x")
    assert "'model'" in str(info.value)
    assert "not a mapping" in str(info.value)


def test_override_value_keeps_equals_signs() -> None:
    raw = copy.deepcopy(MINIMAL)
    apply_override(raw, "input.options.filter=a=b")
    assert raw["input"]["options"] == {"filter": "a=b"}


def test_override_empty_value_is_empty_string() -> None:
    raw = copy.deepcopy(MINIMAL)
    apply_override(raw, "model=")
    assert raw["model"] == ""
    with pytest.raises(ConfigError, match="'model' must not be empty"):
        parse_config(raw)


# --- parse_run_date -------------------------------------------------------------------------


def test_parse_run_date_ok() -> None:
    assert parse_run_date("2026-11-22") == dt.date(2026, 11, 22)


@pytest.mark.parametrize("text", ["2026-13-01", "2026-02-30", "yesterday", "", "2026-11-22T10"])
def test_parse_run_date_invalid(text: str) -> None:
    with pytest.raises(ConfigError, match="--run-date") as info:
        parse_run_date(text)
    assert repr(text) in str(info.value)


# --- the error type ---------------------------------------------------------------------------


def test_config_error_exit_code_is_nonzero() -> None:
    assert issubclass(ConfigError, TallyError)
    assert ConfigError.exit_code != 0
    assert ConfigError("x").exit_code != 0


def test_set_fills_an_empty_section(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(
        "model: m\ninput: {path: p}\ncolumns: {label: y, score: s}\nmetrics:\n"
    )
    config = load_config(path, ["metrics.buckets=1024"])
    assert config.metrics.buckets == 1024


@pytest.mark.parametrize("text", ["20261122", "2026-W47-1", "2026-11-22T00:00"])
def test_run_date_must_be_yyyy_mm_dd(text):
    with pytest.raises(ConfigError, match=re.escape(repr(text))):
        parse_run_date(text)


@pytest.mark.parametrize("key", ["thresholds", "beta"])
def test_huge_integers_are_config_errors(key):
    raw = {"model": "m", "input": {"path": "p"}, "columns": {"label": "y", "score": "s"},
           "metrics": {key: [10**400] if key == "thresholds" else 10**400}}
    with pytest.raises(ConfigError, match=re.escape(f"metrics.{key}")):
        parse_config(raw)


def test_input_options_are_spark_strings():
    raw = {"model": "m", "input": {"path": "p", "options": {"header": True, "n": 3}},
           "columns": {"label": "y", "score": "s"}}
    assert dict(parse_config(raw).input.options) == {"header": "true", "n": "3"}
    raw["input"]["options"] = {"header": None}
    with pytest.raises(ConfigError, match=re.escape("input.options.header")):
        parse_config(raw)


def test_several_score_columns_weight_slices_and_counts_table():
    raw = {
        "model": "m",
        "input": {"path": "p"},
        "columns": {"label": "y", "score": ["s7", "s8"], "weight": "w"},
        "slices": ["country", ["country", "device"]],
        "max_slices_per_spec": 50,
        "output": {"counts_table": "db.c"},
    }
    config = parse_config(raw)
    assert config.columns.scores == ("s7", "s8")
    assert config.columns.weight == "w"
    assert config.slices == (("country",), ("country", "device"))
    assert config.max_slices_per_spec == 50
    assert config.output.counts_table == "db.c"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("slices", "country", "slices must be a list"),
        ("slices", [[]], "slices[0]"),
        ("slices", [["a", "a"]], "slices[0] names a column twice"),
        ("slices", [["a"], "a"], "same spec twice"),
        ("max_slices_per_spec", 0, "max_slices_per_spec"),
    ],
)
def test_bad_slices(key, value, message):
    raw = {"model": "m", "input": {"path": "p"}, "columns": {"label": "y", "score": "s"},
           key: value}
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(raw)


def test_bad_score_list():
    for scores, message in (([], "at least one"), (["a", "a"], "twice"), (["a", 3], "score[1]")):
        raw = {"model": "m", "input": {"path": "p"}, "columns": {"label": "y", "score": scores}}
        with pytest.raises(ConfigError, match=re.escape(message)):
            parse_config(raw)


@pytest.mark.parametrize(
    ("classes", "message"),
    [([], "classes must be a non-empty list"), (["a", "a"], "classes lists a name twice")],
)
def test_class_list_must_be_nonempty_and_unique(classes, message) -> None:
    raw = {
        "model": "m",
        "task": "multiclass",
        "classes": classes,
        "input": {"path": "p"},
        "columns": {"label": "y", "prediction": "p"},
    }
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)


# --- input.where, input.query, input.allow_empty -----------------------------------------


def test_where_and_query_are_kept_as_written() -> None:
    """Placeholders stay in the config; the job renders them for its --run-date."""
    cfg = parse_config(minimal(input={"path": "p", "where": "ds = '{run_date}'"}))
    assert cfg.input.where == "ds = '{run_date}'"
    assert cfg.input.query is None
    assert cfg.input.allow_empty is False
    query = "SELECT s.*, l.label FROM s JOIN l USING (request_id) WHERE s.ds = '{run_date-3}'"
    cfg = parse_config(minimal(input={"query": query, "allow_empty": True}))
    assert (cfg.input.query, cfg.input.path, cfg.input.table) == (query, None, None)
    assert cfg.input.allow_empty is True
    cfg = parse_config(minimal(input={"table": "db.t", "where": "dt = '{run_date_nodash}'"}))
    assert cfg.input.where == "dt = '{run_date_nodash}'"


@pytest.mark.parametrize(
    "query",
    [
        "select * from t",
        "  WITH a AS (SELECT 1 AS x) SELECT * FROM a",
        "-- last night's rows\nSELECT * FROM t",
        "/* a comment */ (SELECT * FROM t) UNION ALL (SELECT * FROM u)",
        "FROM t SELECT *",
        "VALUES (1, 0.5)",
        "TABLE db.t",
    ],
)
def test_query_may_start_with_any_reading_keyword(query: str) -> None:
    assert parse_config(minimal(input={"query": query})).input.query == query


@pytest.mark.parametrize(
    ("raw_input", "message"),
    [
        (
            {"query": "DROP TABLE tally.metrics"},
            "input.query must be a SELECT (or WITH ... SELECT), got one starting "
            "'DROP TABLE tally.metrics'",
        ),
        ({"query": "-- only a comment"}, "input.query must be a SELECT"),
        ({"query": "INSERT INTO t SELECT 1"}, "input.query must be a SELECT"),
        ({"query": "  "}, "'input.query' must not be empty"),
        ({"query": 5}, "'input.query' must be a string"),
        ({"path": "p", "where": ""}, "'input.where' must not be empty"),
        ({"path": "p", "where": ["ds = 1"]}, "'input.where' must be a string"),
        (
            {"query": "SELECT * FROM t", "where": "ds = 1"},
            "input.where filters input.path or input.table; with input.query write the "
            "condition in the query's WHERE",
        ),
        (
            {"query": "SELECT * FROM t", "reader": "arrow"},
            "input.reader: arrow reads the files of input.path or input.table",
        ),
        ({"path": "p", "allow_empty": "yes"}, "input.allow_empty must be true or false"),
        ({"path": "p", "wher": "ds = 1"}, "unknown key 'input.wher'; did you mean 'input.where'?"),
        ({"path": "p", "where": "ds = '{rundate}'"}, "input.where: unknown placeholder {rundate}"),
        (
            {"query": "SELECT * FROM t WHERE ds = '{run_date+x}'"},
            "input.query: malformed placeholder {run_date+x}",
        ),
    ],
)
def test_bad_where_or_query_is_a_config_error(raw_input: dict[str, Any], message: str) -> None:
    assert message in config_error(minimal(input=raw_input))


def test_override_sets_where_with_placeholders(tmp_path: Path) -> None:
    path = write(tmp_path, "model: m\ninput: {path: p}\ncolumns: {label: y, score: s}\n")
    cfg = load_config(path, ["input.where=ds = '{run_date-1}' AND country = 'US'"])
    assert cfg.input.where == "ds = '{run_date-1}' AND country = 'US'"
