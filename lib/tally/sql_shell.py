"""``tally sql``: SQL statements in one Spark session — one query, a file of them, or a prompt.

A process pays Spark's start (the JVM, the Hive catalog) once; a file of ``;``-separated
statements (``--file``, or stdin when it is not a terminal) or the interactive prompt (no
query, stdin a terminal) runs every statement in that one session.

Output, per statement that returns columns:

- ``table``: at most ``max_rows`` rows (default :data:`TABLE_ROWS`); when the result has
  more, one line on stderr says so with the total: ``tally sql: output truncated to N of M
  rows (--max-rows)``.
- ``csv``: every row unless ``--max-rows`` is given (then the same stderr line when it cuts).

Rows are streamed from the executors a partition at a time (``toLocalIterator``), so the
driver never holds more than one partition of a result, and the stream stops after the
rows printed: Spark computes the partitions that hold them, not the whole result (a
``SELECT *`` of a large table prints its first rows at once). When a result is cut, its
total comes from ``count()`` on the executors: the one case where a statement runs twice.

A statement Spark rejects ends a one-shot or file run with ``tally: error: ...`` (exit 1,
naming the statement and its line in a file); at the prompt it prints that line and the
prompt goes on.
"""

from __future__ import annotations

import contextlib
import csv
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from py4j.protocol import Py4JError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, Row, SparkSession

from tally.errors import ConfigError, TallyError
from tally.spark.session import get_spark, prepare_local_environment
from tally.sql_text import all_statements, format_value, is_blank, print_table, split_statements

#: Rows the table format prints when ``--max-rows`` is not given.
TABLE_ROWS = 1000
#: The prompt's readline history: ``$TALLY_SQL_HISTORY`` or this file.
HISTORY_FILE = "~/.tally_sql_history"
HISTORY_ENV = "TALLY_SQL_HISTORY"
HISTORY_LINES = 1000
PROMPT, MORE = "tally> ", "  ...> "
EXIT_WORDS = ("exit", "quit")


class QueryError(TallyError):
    """Spark rejected a statement (parse or analysis error, or a failure while it ran)."""


def row_limit(fmt: str, max_rows: int | None) -> int | None:
    """Rows to print: ``max_rows`` when given (0: all), else :data:`TABLE_ROWS` for a table
    and all for csv."""
    if max_rows is None:
        return TABLE_ROWS if fmt == "table" else None
    if max_rows < 0:
        raise ConfigError(f"--max-rows must be 0 (all rows) or more, got {max_rows}")
    return max_rows or None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass
class Shell:
    """Runs statements in ``spark`` and prints their rows to ``out``; notes go to ``err``."""

    spark: SparkSession
    fmt: str = "table"
    limit: int | None = TABLE_ROWS
    out: TextIO | None = None
    err: TextIO | None = None
    timing: bool = False

    def __post_init__(self) -> None:
        self.out = self.out or sys.stdout
        self.err = self.err or sys.stderr
        self._results = 0  # statements that printed rows (a blank line separates results)

    def run(self, sql: str) -> int:
        """Run one statement, print its rows; the number of rows it returned."""
        started = time.perf_counter()
        try:
            df = self.spark.sql(sql)
            shown, total = self._print(df) if df.columns else (0, 0)
        except (PySparkException, Py4JError) as exc:
            raise QueryError(f"query failed: {_first_line(exc)}") from exc
        finally:
            self.out.flush()
        if shown < total:
            print(
                f"tally sql: output truncated to {shown} of {total} rows (--max-rows)",
                file=self.err,
            )
        if self.timing:
            elapsed = time.perf_counter() - started
            print(f"tally sql: {total} rows in {elapsed:.3f} s", file=self.err, flush=True)
        return total

    def _print(self, df: DataFrame) -> tuple[int, int]:
        """(rows printed, rows in the result)."""
        if self._results:
            print(file=self.out)
        self._results += 1
        if self.fmt == "csv":
            writer = csv.writer(self.out, lineterminator="\n")
            writer.writerow(df.columns)
            return _stream(df, self.limit, writer.writerow)
        cells: list[list[str]] = []
        shown, total = _stream(df, self.limit, cells.append)
        print_table(df.columns, cells, self.out)
        return shown, total

    def run_script(self, text: str) -> None:
        """Every statement of ``text`` in order; the first that fails ends the run."""
        statements = all_statements(text)
        for number, statement in enumerate(statements, start=1):
            try:
                self.run(statement.text)
            except QueryError as exc:
                where = f"statement {number} of {len(statements)} (line {statement.line})"
                raise QueryError(f"{where}: {exc}") from exc

    def prompt(self, read_line: Callable[[str], str] = input, history: Path | None = None) -> int:
        """Read statements at a prompt until ``exit``, ``quit`` or end of input (Ctrl-D).

        A statement may span lines and ends with ``;``. Ctrl-C drops the lines typed so far,
        or cancels the running query. Each line typed goes to ``history`` (readline's).
        """
        self.timing = True
        threading.Thread(target=self._warm_up, name="tally-sql-warm-up", daemon=True).start()
        print(
            "tally sql: end each statement with ';'; exit, quit or Ctrl-D to leave",
            file=self.err,
            flush=True,
        )
        with _History(history) as remember:
            buffer = ""
            while True:
                try:
                    line = read_line(MORE if buffer else PROMPT)
                except EOFError:
                    print(file=self.out)
                    return 0
                except KeyboardInterrupt:
                    print(file=self.out)
                    buffer = ""
                    continue
                remember(line)
                if not buffer and line.strip().rstrip(";").strip().lower() in EXIT_WORDS:
                    return 0
                statements, rest = split_statements(f"{buffer}\n{line}" if buffer else line)
                buffer = "" if is_blank(rest) else rest
                for statement in statements:
                    self._run_at_prompt(statement.text)

    def _warm_up(self) -> None:
        """Start the catalog (Hive client, metastore) and run a first job while the user types
        the first statement, which otherwise waits for both."""
        try:
            self.spark.sql("SHOW DATABASES").collect()
            self.spark.range(1).collect()
        except Exception:  # a warm-up only: the statement the user typed reports errors
            pass

    def _run_at_prompt(self, sql: str) -> None:
        try:
            self.run(sql)
        except QueryError as exc:
            print(f"tally: error: {exc}", file=self.err, flush=True)
        except KeyboardInterrupt:
            self.spark.sparkContext.cancelAllJobs()
            print("tally sql: cancelled", file=self.err, flush=True)


def _stream(
    df: DataFrame, limit: int | None, sink: Callable[[list[str]], object]
) -> tuple[int, int]:
    """Hand the first ``limit`` rows (all when None) of ``df`` to ``sink`` as text;
    (rows handed, rows in ``df``), counted by Spark only when there are more."""
    shown = 0
    rows: Iterator[Row] = df.toLocalIterator()
    for row in rows:
        if shown == limit:
            rows.close()  # type: ignore[attr-defined]  # a generator: stops the stream
            return shown, df.count()
        sink([format_value(v) for v in row])
        shown += 1
    return shown, shown


class _History:
    """The prompt's readline history, loaded from and saved to a file; a no-op without
    readline or a file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.readline = None
        if path is not None:
            try:
                import readline
            except ImportError:  # e.g. Windows without pyreadline
                return
            self.readline = readline

    def __enter__(self) -> Callable[[str], None]:
        if self.readline is None:
            return lambda line: None
        self.readline.set_auto_history(False)  # lines are added once, by remember()
        self.readline.clear_history()
        if self.path.is_file():
            with contextlib.suppress(OSError):  # an unreadable history starts empty
                self.readline.read_history_file(str(self.path))
        self.readline.set_history_length(HISTORY_LINES)
        return self._remember

    def _remember(self, line: str) -> None:
        if line.strip():
            self.readline.add_history(line)

    def __exit__(self, *exc: object) -> None:
        if self.readline is not None:
            try:
                self.readline.write_history_file(str(self.path))
            except OSError as error:
                print(f"tally sql: history not saved to {self.path}: {error}", file=sys.stderr)


def history_path() -> Path:
    """Where the prompt keeps its history: ``$TALLY_SQL_HISTORY`` or ``~/.tally_sql_history``."""
    return Path(os.environ.get(HISTORY_ENV) or HISTORY_FILE).expanduser()


def run_sql(
    query: str | None,
    file: str | None = None,
    fmt: str = "table",
    max_rows: int | None = None,
    timing: bool = False,
) -> int:
    """``tally sql``: the statements of ``query``, of ``file`` (``-``: stdin), of stdin when it
    is not a terminal, or typed at a prompt; arguments are checked before Spark starts."""
    if query is not None and file is not None:
        raise ConfigError("tally sql takes a query or --file, not both")
    limit = row_limit(fmt, max_rows)
    script = query
    if file == "-" or (query is None and file is None and not sys.stdin.isatty()):
        script = sys.stdin.read()
    elif file is not None:
        try:
            script = Path(file).read_text()
        except OSError as exc:
            raise ConfigError(f"--file {file}: {exc.strerror or exc}") from exc

    statements = [] if script is None else all_statements(script)
    if script is not None and not statements:
        source = "the query" if query is not None else f"--file {file}" if file else "stdin"
        raise ConfigError(f"no SQL statement in {source}")
    if script is None:
        print("tally sql: starting Spark and the catalog ...", file=sys.stderr, flush=True)
    prepare_local_environment()
    shell = Shell(get_spark("tally-sql"), fmt, limit, timing=timing)
    if script is None:
        return shell.prompt(history=history_path())
    try:
        if query is not None and len(statements) == 1:
            shell.run(statements[0].text)  # one query: its error without a statement number
        else:
            shell.run_script(script)
    except BrokenPipeError:
        _drop_stdout()  # the reader went away (`| head`): stop quietly
    return 0


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so that Python's flush at exit does not fail again."""
    with contextlib.suppress(AttributeError, OSError, ValueError):
        fd = sys.stdout.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
