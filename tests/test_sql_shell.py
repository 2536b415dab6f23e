"""``tally sql`` in one Spark session: complete CSV output, a cut that says so, a file or stdin
of statements, and the prompt. In-process through ``tally.cli.main`` and the shared session.

The rows are made here (numpy, awkward strings, nulls) and compared with what the CSV says,
parsed back with the csv module; nothing is compared with Tally's own output.
"""

from __future__ import annotations

import csv
import io
import math
import sys

import numpy as np
import pytest

from tally.bench.queries import TIMING
from tally.cli import main
from tally.sql_shell import Shell

ROWS = 2_345  # more than the old silent cap of 1,000
VIEW = "sql_shell_rows"
TRUNCATED = "tally sql: output truncated to {} of {} rows (--max-rows)"


@pytest.fixture(scope="module")
def rows(spark) -> list[tuple]:
    """(id, value, text) rows in a view over 3 partitions: every float digit matters, the
    text has commas, quotes, a newline and nulls."""
    rng = np.random.default_rng(17)
    values = rng.normal(size=ROWS) * 10.0 ** rng.integers(-8, 8, ROWS)
    texts = ["plain", 'a "quoted", text', "two\nlines", None, "ünï"]
    made = [
        (i, None if i % 97 == 0 else float(values[i]), texts[i % len(texts)]) for i in range(ROWS)
    ]
    df = spark.createDataFrame(made, "id long, value double, text string").repartition(3)
    df.createOrReplaceTempView(VIEW)
    return made


def cell(value: object) -> str:
    """The reference's text of one value: Python's own, null as empty."""
    return "" if value is None else str(value)


def test_csv_writes_every_row_by_default(rows, capsys):
    assert main(["sql", "--format", "csv", f"SELECT * FROM {VIEW} ORDER BY id"]) == 0
    out, err = capsys.readouterr()
    printed = list(csv.reader(io.StringIO(out)))
    assert printed[0] == ["id", "value", "text"]
    assert len(printed) - 1 == ROWS
    assert printed[1:] == [[str(i), cell(v), cell(t)] for i, v, t in rows]
    parsed = [float(r[1]) for r in printed[1:] if r[1]]
    assert parsed == [v for _, v, _ in rows if v is not None]  # exact: repr round-trips
    assert "truncated" not in err


def test_csv_with_max_rows_says_it_cut_and_the_total(rows, capsys):
    query = f"SELECT id FROM {VIEW} WHERE id % 2 = 0 ORDER BY id"
    assert main(["sql", "--format", "csv", "--max-rows", "10", query]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["id", *(str(i) for i in range(0, 20, 2))]
    even = sum(1 for i, _, _ in rows if i % 2 == 0)
    assert TRUNCATED.format(10, even) in err.splitlines()


def test_the_table_format_caps_at_1000_rows_and_says_so(rows, capsys):
    assert main(["sql", f"SELECT id, text FROM {VIEW} WHERE text IS NULL ORDER BY id"]) == 0
    out, err = capsys.readouterr()
    nulls = [i for i, _, t in rows if t is None]
    assert len(nulls) < 1000  # no cut: no line
    lines = out.splitlines()
    assert [int(line.split()[0]) for line in lines[2:]] == nulls
    assert "truncated" not in err

    assert main(["sql", f"SELECT id FROM {VIEW} ORDER BY id"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[:2] == ["id ", "---"]  # as wide as the widest id printed, 999
    assert [int(x) for x in lines[2:]] == list(range(1000))
    assert TRUNCATED.format(1000, ROWS) in err.splitlines()

    assert main(["sql", "--max-rows", "0", f"SELECT id FROM {VIEW}"]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) - 2 == ROWS and "truncated" not in err


SCRIPT = f"""\
-- two results and a view made on the way; the ; in literals and comments end nothing
CREATE OR REPLACE TEMP VIEW sql_shell_small AS
  SELECT id, text FROM {VIEW} WHERE id < 5;  /* five rows; */
SELECT count(*) AS n, 'a;b' AS literal FROM sql_shell_small;
SELECT id FROM sql_shell_small WHERE text = 'two\\nlines' ORDER BY id
"""


def test_a_file_runs_every_statement_in_one_session(rows, tmp_path, capsys):
    path = tmp_path / "q.sql"
    path.write_text(SCRIPT)
    assert main(["sql", "--file", str(path), "--format", "csv"]) == 0
    out, _ = capsys.readouterr()
    multiline = [i for i, _, t in rows if i < 5 and t == "two\nlines"]
    assert out.split("\n\n") == ["n,literal\n5,a;b", "id\n" + "".join(f"{i}\n" for i in multiline)]


def test_stdin_that_is_not_a_terminal_is_a_script(rows, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(SCRIPT))  # StringIO.isatty() is False
    assert main(["sql", "--format", "csv", "--timing"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("n,literal\n5,a;b\n")
    timings = [m for m in map(TIMING.match, err.splitlines()) if m]  # as make bench-queries
    assert [m[1] for m in timings] == ["0", "1", "1"]  # rows of the 3 statements


def test_a_failed_statement_in_a_file_stops_it_and_names_it(rows, tmp_path, capsys):
    path = tmp_path / "bad.sql"
    path.write_text("SELECT 1 AS one;\n\nSELECT nope FROM sql_shell_no_such_view;\nSELECT 2;\n")
    assert main(["sql", "--file", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == ["one", "---", "1  "]  # the first ran, the third did not
    assert err.startswith("tally: error: statement 2 of 3 (line 3): query failed: [")
    assert "sql_shell_no_such_view" in err and len(err.splitlines()) == 1


def test_arguments_are_checked_before_spark(tmp_path, capsys):
    assert main(["sql", "--file", str(tmp_path / "missing.sql")]) == 2
    assert main(["sql", "--file", "q.sql", "SELECT 1"]) == 2
    assert main(["sql", "--max-rows", "-1", "SELECT 1"]) == 2
    assert main(["sql", " ; -- nothing"]) == 2
    (tmp_path / "empty.sql").write_text("/* nothing; */\n")
    assert main(["sql", "--file", str(tmp_path / "empty.sql")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("tally: error: --file ") and "missing.sql" in err[0]
    assert err[1] == "tally: error: tally sql takes a query or --file, not both"
    assert err[2] == "tally: error: --max-rows must be 0 (all rows) or more, got -1"
    assert err[3] == "tally: error: no SQL statement in the query"
    assert err[4] == f"tally: error: no SQL statement in --file {tmp_path / 'empty.sql'}"


def typed(*lines: str):
    """A prompt's input: these lines, then Ctrl-D (EOFError); ``^C`` stands for Ctrl-C."""
    pending = list(lines)

    def read_line(prompt: str) -> str:
        typed.prompts.append(prompt)
        if not pending:
            raise EOFError
        line = pending.pop(0)
        if line == "^C":
            raise KeyboardInterrupt
        return line

    typed.prompts = []
    return read_line


def test_the_prompt_reads_statements_over_lines_and_survives_errors(rows, spark, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    history = tmp_path / "history"
    shell = Shell(spark, "table", 1000, out=out, err=err)
    reader = typed(
        "SELECT count(*) AS n",
        f"FROM {VIEW}",
        "WHERE value IS NULL;",
        "SELECT nope FROM",  # dropped by Ctrl-C
        "^C",
        "SELECT * FROM sql_shell_no_such_view;",
        "SELECT 'x;y' AS s, 2 AS t; SELECT",
        "  3 AS u;",
        "quit",
        "SELECT 'never run';",
    )
    assert shell.prompt(reader, history) == 0
    nulls = str(sum(1 for _, v, _ in rows if v is None))
    assert out.getvalue().split("\n\n") == [
        f"{'n'.ljust(len(nulls))}\n{'-' * len(nulls)}\n{nulls}",
        "\ns    t\n---  -\nx;y  2",  # the line break after ^C first
        "u\n-\n3\n",
    ]
    errors = [line for line in err.getvalue().splitlines() if line.startswith("tally: error")]
    assert len(errors) == 1 and "sql_shell_no_such_view" in errors[0]
    assert typed.prompts == ["tally> ", "  ...> ", "  ...> ", "tally> ", "  ...> ",
                             "tally> ", "tally> ", "  ...> ", "tally> "]  # fmt: skip
    saved = history.read_text().splitlines()
    assert saved[-3:] == ["SELECT 'x;y' AS s, 2 AS t; SELECT", "  3 AS u;", "quit"]
    assert saved[0] == "SELECT count(*) AS n"

    again = Shell(spark, "table", 1000, out=io.StringIO(), err=io.StringIO())
    assert again.prompt(typed("exit;"), history) == 0  # ends at once; history kept
    assert history.read_text().splitlines()[: len(saved)] == saved


def test_the_prompt_ends_at_end_of_input(spark):
    out = io.StringIO()
    shell = Shell(spark, "csv", None, out=out, err=io.StringIO())
    assert shell.prompt(typed("SELECT 1 AS one;"), None) == 0
    assert out.getvalue() == "one\n1\n\n"  # the last line break is Ctrl-D's


def test_an_infinite_value_and_a_date_print_as_spark_returns_them(spark, capsys):
    query = "SELECT CAST('inf' AS DOUBLE) AS i, DATE'2026-11-22' AS d, CAST(NULL AS INT) AS n"
    assert main(["sql", "--format", "csv", query]) == 0
    printed = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert printed == [["i", "d", "n"], ["inf", "2026-11-22", ""]]
    assert math.isinf(float(printed[1][0]))


class ClosedAfter(io.StringIO):
    """A stdout whose reader goes away (``| head -3``) after ``lines`` lines."""

    def __init__(self, lines: int) -> None:
        super().__init__()
        self.left = lines

    def write(self, text: str) -> int:
        if self.left <= 0:
            raise BrokenPipeError(32, "Broken pipe")
        self.left -= text.count("\n")
        return super().write(text)


def test_a_reader_that_stops_early_ends_the_output_quietly(rows, monkeypatch, capsys):
    closed = ClosedAfter(3)
    monkeypatch.setattr(sys, "stdout", closed)
    assert main(["sql", "--format", "csv", f"SELECT id FROM {VIEW} ORDER BY id"]) == 0
    assert closed.getvalue() == "id\n0\n1\n"
    assert capsys.readouterr().err == ""
