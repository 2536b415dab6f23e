"""Run-date placeholders in input.where / input.query: rendered values and one-line errors."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from tally.config import InputConfig
from tally.errors import ConfigError
from tally.run_date import check_placeholders, render, render_input

DAY = dt.date(2026, 11, 22)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ds = '{run_date}'", "ds = '2026-11-22'"),
        ("dt = '{run_date_nodash}'", "dt = '20261122'"),
        ("ds = '{run_date-3}'", "ds = '2026-11-19'"),
        ("ds = '{run_date+1}'", "ds = '2026-11-23'"),
        ("ds = '{run_date-0}'", "ds = '2026-11-22'"),
        ("dt = '{run_date_nodash-30}'", "dt = '20261023'"),
        # across a month, a year and a leap day, worked out by hand
        ("{run_date+9}", "2026-12-01"),
        ("{run_date+40}", "2027-01-01"),
        (
            "event_date BETWEEN '{run_date-6}' AND '{run_date}'",
            "event_date BETWEEN '2026-11-16' AND '2026-11-22'",
        ),
        # doubled braces are literal braces; no placeholder is read inside them
        ("rlike(id, '^[0-9]{{4}}$')", "rlike(id, '^[0-9]{4}$')"),
        ("'{{run_date}}'", "'{run_date}'"),
        ("'{{{run_date}}}'", "'{2026-11-22}'"),
        ("no placeholders at all", "no placeholders at all"),
    ],
)
def test_render_fills_placeholders(text: str, expected: str) -> None:
    assert render(text, DAY, "input.where") == expected


def test_leap_day_and_year_boundary() -> None:
    assert render("{run_date+1}", dt.date(2028, 2, 28), "k") == "2028-02-29"
    assert render("{run_date_nodash-1}", dt.date(2027, 1, 1), "k") == "20261231"


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("ds = '{ds}'", "unknown placeholder {ds}"),
        ("ds = '{run_dat}'", "unknown placeholder {run_dat}; did you mean {run_date}?"),
        ("ds = '{RUN_DATE}'", "unknown placeholder {RUN_DATE}"),
        ("ds = '{}'", "unknown placeholder {}"),
        ("ds = '{run_date-}'", "malformed placeholder {run_date-}"),
        ("ds = '{run_date - 3}'", "malformed placeholder {run_date - 3}"),
        ("ds = '{run_date-3d}'", "malformed placeholder {run_date-3d}"),
        ("ds = '{run_date_nodash*2}'", "malformed placeholder {run_date_nodash*2}"),
        ("ds = '{run_date-99999}'", "placeholder {run_date-99999} shifts by 99999 days"),
        ("ds = '{run_date'", "lone '{' at character 7"),
        ("ds = 'run_date}'", "lone '}' at character 15"),
    ],
)
def test_bad_placeholders_name_themselves(text: str, names: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_placeholders(text, "input.where")
    message = str(info.value)
    assert message.startswith("input.where: ")
    assert names in message
    assert "\n" not in message
    with pytest.raises(ConfigError):  # rendering refuses what checking refuses
        render(text, DAY, "input.where")


def test_offset_off_the_calendar_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"\{run_date\+2\} leaves the calendar"):
        render("{run_date+2}", dt.date(9999, 12, 30), "input.query")


def test_render_input_renders_where_and_query_only() -> None:
    source = InputConfig(path="data/{run_date}", where="ds = '{run_date-1}'")
    rendered = render_input(source, DAY)
    assert rendered.where == "ds = '2026-11-21'"
    assert rendered.path == "data/{run_date}"  # paths are not templated
    query = InputConfig(query="SELECT * FROM s WHERE ds = '{run_date_nodash}'")
    assert render_input(query, DAY).query == "SELECT * FROM s WHERE ds = '20261122'"
    assert render_input(InputConfig(table="db.t"), DAY) == InputConfig(table="db.t")


def _evaluate(tmp_path: Path, input_yaml: str, run_date: str) -> subprocess.CompletedProcess[str]:
    """``tally evaluate`` of a config with this ``input:`` line, in a fresh interpreter."""
    config = tmp_path / "job.yaml"
    config.write_text(f"model: m\ninput: {input_yaml}\ncolumns: {{label: label, score: score}}\n")
    command = ["evaluate", "--config", str(config), "--run-date", run_date]
    return subprocess.run(
        [sys.executable, "-m", "tally.cli", *command], capture_output=True, text=True, timeout=60
    )


def test_cli_refuses_an_unknown_placeholder_before_spark(tmp_path: Path) -> None:
    """Exit 2, one line naming the placeholder; no JVM is started (it would take seconds)."""
    done = _evaluate(tmp_path, "{path: /nowhere, where: \"ds = '{run_day}'\"}", "2026-11-22")
    assert done.returncode == 2
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("tally:")]
    assert lines == [
        "tally: error: input.where: unknown placeholder {run_day}; did you mean {run_date}? "
        "(known: {run_date}, {run_date_nodash}, with an optional -N or +N days; "
        "'{{' for a literal brace)"
    ]
    assert "Traceback" not in done.stderr
    assert "SparkContext" not in done.stderr


def test_cli_refuses_an_offset_off_the_calendar_before_spark(tmp_path: Path) -> None:
    query = "{query: \"SELECT * FROM t WHERE ds = '{run_date+5}'\"}"
    done = _evaluate(tmp_path, query, "9999-12-30")
    assert done.returncode == 2
    assert "input.query: placeholder {run_date+5} leaves the calendar" in done.stderr
    assert "Traceback" not in done.stderr
