"""The ``tally`` command: ``evaluate``, ``check``, ``sql``, ``spark-sql``, ``rollup``, ``report``,
``batch``, ``demo-data``.

Failures a user can cause end with one line on stderr (``tally: error: ...``)
and a non-zero exit code; config problems are found before Spark starts. A
failed check (exit 6) prints one ``tally: check failed: ...`` line per check.
Spark's own log shows errors only; ``--verbose`` (or ``TALLY_SPARK_LOG_LEVEL=warn``)
shows its warnings too (conf/log4j2.properties).
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from collections.abc import Sequence

from tally.checks import Outcome
from tally.errors import ChecksFailedError, ConfigError, TallyError
from tally.sql_text import format_value, print_table

log = logging.getLogger("tally")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tally", description="Evaluate model scores on Spark from mergeable count tables."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--verbose",
        action="store_true",
        help=f"show Spark's warnings too (sets {SPARK_LOG_LEVEL}=warn; default: errors only)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser(
        "evaluate", parents=[common], help="run an evaluation job and write its metrics"
    )
    _job_arguments(ev, "partition to (re)write, YYYY-MM-DD")

    chk = sub.add_parser(
        "check",
        parents=[common],
        help="re-evaluate the config's checks from stored results (no input read); exit 6 "
        "when one fails",
    )
    _job_arguments(chk, "run date whose checks to (re)evaluate, YYYY-MM-DD")

    sql = sub.add_parser(
        "sql",
        parents=[common],
        help="run SQL against the catalog and print the rows: one query, a --file of them "
        "(or stdin), or a prompt when no query is given",
    )
    sql.add_argument("query", nargs="?", help="statement(s) to run; none: read stdin or prompt")
    sql.add_argument("--file", help="run every ;-separated statement of this file ('-': stdin)")
    sql.add_argument("--format", choices=("table", "csv"), default="table")
    sql.add_argument(
        "--max-rows",
        type=int,
        help="print at most this many rows, saying so on stderr when a result has more "
        "(default: 1000 for table, all for csv; 0: all)",
    )
    sql.add_argument(
        "--timing", action="store_true", help="each statement's rows and time on stderr"
    )

    # prefix_chars="+": every argument, -e and --help included, goes to spark-sql
    spark_sql = sub.add_parser(
        "spark-sql",
        add_help=False,
        prefix_chars="+",
        help="Spark's spark-sql shell on tally's catalog (conf/, this venv's PySpark)",
    )
    spark_sql.add_argument("args", nargs=argparse.REMAINDER)

    roll = sub.add_parser(
        "rollup",
        parents=[common],
        help="metrics over a date range from stored counts (no rescan of the input)",
    )
    roll.add_argument("--model", required=True)
    roll.add_argument("--from", dest="start", required=True, help="first run date, YYYY-MM-DD")
    roll.add_argument("--to", dest="end", required=True, help="last run date, YYYY-MM-DD")
    roll.add_argument(
        "--config", help="take output.table, output.counts_table and metrics options from it"
    )
    roll.add_argument("--counts-table", help="default: output.counts_table or tally.counts")
    roll.add_argument("--output-table", help="default: output.table or tally.metrics")
    roll.add_argument("--no-write", action="store_true", help="print only, write nothing")
    roll.add_argument(
        "--slice",
        action="append",
        default=[],
        help="print only these slices (repeatable; default all)",
    )

    rep = sub.add_parser(
        "report",
        parents=[common],
        help="write a self-contained HTML report of one model and run date",
    )
    rep.add_argument("--model", help="model to report on (default: the --config file's model)")
    rep.add_argument("--run-date", required=True, help="run date to report on, YYYY-MM-DD")
    rep.add_argument(
        "--days", type=int, default=30, help="days of nightly runs in the trend (default 30)"
    )
    rep.add_argument(
        "--out", help="HTML file to write (default: reports/<model>-<run date>.html)"
    )
    rep.add_argument(
        "--config", help="take the model and the output tables (results, curves, checks) from it"
    )
    rep.add_argument("--results-table", help="default: output.table or tally.metrics")
    rep.add_argument("--curves-table", help="default: output.curves_table or tally.curves")
    rep.add_argument("--checks-table", help="default: output.checks_table or tally.checks")
    rep.add_argument("--score-column", help="only this score column (default: all of them)")

    batch = sub.add_parser(
        "batch",
        help="run several tally commands in one process, so they share one Spark start",
    )
    batch.add_argument(
        "--step",
        dest="steps",
        nargs=2,
        action="append",
        required=True,
        metavar=("NAME", "COMMAND"),
        help="a name for messages and a tally command line without 'tally', e.g. "
        "--step headline 'sql \"SELECT 1\"' (repeatable; run in order)",
    )
    batch.add_argument(
        "--keep-going",
        action="store_true",
        help="run every step even after one failed, then fail naming the failed steps "
        "(default: stop at the first failure)",
    )

    demo = sub.add_parser("demo-data", help="write the deterministic demo dataset (Parquet)")
    demo.add_argument("--path", default="data/demo")
    demo.add_argument("--rows", type=int, default=2_000_000)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument(
        "--kind", choices=("binary", "multilabel", "multiclass"), default="binary"
    )
    return parser


def _job_arguments(parser: argparse.ArgumentParser, run_date_help: str) -> None:
    """``--config``, ``--run-date`` and ``--set`` of ``evaluate`` and ``check``."""
    parser.add_argument("--config", required=True, help="job config (YAML)")
    parser.add_argument("--run-date", required=True, help=run_date_help)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set metrics.buckets=1024 (repeatable)",
    )


#: Environment variable read by conf/log4j2.properties: the lowest level of Spark's
#: JVM log that reaches the console (``error`` when unset).
SPARK_LOG_LEVEL = "TALLY_SPARK_LOG_LEVEL"


def _quiet_pyspark_loggers() -> None:
    """Keep PySpark's Python-side logs of Spark internals off stderr (``--verbose`` keeps them).

    A failed query is logged by PySpark as one JSON line holding the Java stack trace
    before the exception reaches Tally, which reports it in one line; py4j logs at
    INFO when it closes its connection.
    """
    from pyspark.logger import PySparkLogger

    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)
    logging.getLogger("py4j").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if getattr(args, "verbose", False):
        os.environ[SPARK_LOG_LEVEL] = "warn"  # read by the JVM that PySpark starts
    elif args.command != "demo-data":
        _quiet_pyspark_loggers()
    try:
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "check":
            return _check(args)
        if args.command == "sql":
            return _sql(args)
        if args.command == "spark-sql":
            return _spark_sql(args)
        if args.command == "rollup":
            return _rollup(args)
        if args.command == "report":
            return _report(args)
        if args.command == "batch":
            return _batch(args)
        return _demo_data(args)
    except ChecksFailedError as exc:
        for line in exc.failures:
            print(f"tally: check failed: {line}", file=sys.stderr)
        return exc.exit_code
    except TallyError as exc:
        print(f"tally: error: {exc}", file=sys.stderr)
        return exc.exit_code


def _evaluate(args: argparse.Namespace) -> int:
    from tally.config import load_config, parse_run_date
    from tally.run_date import render_input

    config = load_config(args.config, args.overrides)  # before Spark starts
    run_date = parse_run_date(args.run_date)
    render_input(config.input, run_date)  # placeholders fail here (exit 2); the job renders
    log.info(
        "config %s: model=%r input=%s columns=%s metrics=%s output=%s on_invalid=%s",
        args.config,
        config.model,
        config.input,
        config.columns,
        config.metrics,
        config.output,
        config.on_invalid,
    )

    from tally.job import evaluate
    from tally.spark.session import get_spark, prepare_local_environment

    prepare_local_environment()
    summary = evaluate(get_spark(), config, run_date)
    log.info("done: %s", summary.line())
    return 0


def _check(args: argparse.Namespace) -> int:
    from tally.config import load_config, parse_run_date

    config = load_config(args.config, args.overrides)  # before Spark starts
    run_date = parse_run_date(args.run_date)
    if not config.checks:
        raise ConfigError(f"config {args.config} has no checks")

    from tally.spark.checks_table import raise_on_failure, write_outcomes
    from tally.spark.session import get_spark, prepare_local_environment

    prepare_local_environment()
    outcomes = write_outcomes(get_spark("tally-check"), config, run_date)
    _print_outcomes(outcomes)
    raise_on_failure(config, outcomes)
    return 0


def _print_outcomes(outcomes: Sequence[Outcome]) -> None:
    header = ["score_column", "slice", "check", "value", "limit", "passed", "message"]
    cells = [
        [o.score_column, o.slice, o.check, *(format_value(v) for v in (o.value, o.limit)),
         str(o.passed).lower(), o.message or ""]
        for o in outcomes
    ]
    print_table(header, cells)


def _rollup(args: argparse.Namespace) -> int:
    from tally.config import (
        DEFAULT_COUNTS_TABLE,
        DEFAULT_OUTPUT_TABLE,
        check_table_name,
        load_config,
        parse_run_date,
    )

    start, end = parse_run_date(args.start), parse_run_date(args.end)
    counts_table, output_table, options = DEFAULT_COUNTS_TABLE, DEFAULT_OUTPUT_TABLE, None
    if args.config:
        config = load_config(args.config)
        counts_table, output_table = config.output.counts_table, config.output.table
        options = config.metrics
    counts_table = check_table_name(args.counts_table or counts_table, "--counts-table")
    output_table = check_table_name(args.output_table or output_table, "--output-table")
    output_table = None if args.no_write else output_table

    from tally.job import rollup
    from tally.spark.session import get_spark, prepare_local_environment

    prepare_local_environment()
    rows = rollup(
        get_spark("tally-rollup"),
        counts_table,
        output_table,
        args.model,
        start,
        end,
        options=options,
    )
    header = ["score_column", "slice", "metric", "threshold", "value", "reason"]
    shown = [
        [r[0], r[1], r[2], r[4], r[5], r[6]] for r in rows if not args.slice or r[1] in args.slice
    ]
    print_table(header, [[format_value(v) for v in r] for r in shown])
    where = f"; written to {output_table}" if output_table else ""
    log.info("rollup of %s from %s to %s: %d metrics%s", args.model, start, end, len(rows), where)
    return 0


def _report(args: argparse.Namespace) -> int:
    from tally.config import (
        DEFAULT_CHECKS_TABLE,
        DEFAULT_CURVES_TABLE,
        DEFAULT_OUTPUT_TABLE,
        check_table_name,
        load_config,
        parse_run_date,
    )

    run_date = parse_run_date(args.run_date)  # arguments are checked before Spark starts
    if args.days < 1:
        raise ConfigError(f"--days must be at least 1, got {args.days}")
    model, results_table, curves_table = args.model, DEFAULT_OUTPUT_TABLE, DEFAULT_CURVES_TABLE
    checks_table = DEFAULT_CHECKS_TABLE
    if args.config:
        config = load_config(args.config)
        model = model or config.model
        results_table, curves_table = config.output.table, config.output.curves_table
        checks_table = config.output.checks_table
    if not model:
        raise ConfigError("tally report needs --model (or --config, whose model it takes)")
    results_table = check_table_name(args.results_table or results_table, "--results-table")
    curves_table = check_table_name(args.curves_table or curves_table, "--curves-table")
    checks_table = check_table_name(args.checks_table or checks_table, "--checks-table")

    from tally.report import build_report, default_report_path, write_report
    from tally.spark.session import get_spark, prepare_local_environment

    prepare_local_environment()
    page = build_report(
        get_spark("tally-report"),
        results_table,
        curves_table,
        model,
        run_date,
        days=args.days,
        score_column=args.score_column,
        checks_table=checks_table,
    )
    path = write_report(args.out or default_report_path(model, run_date), page)
    log.info("report of %s on %s from %s and %s", model, run_date, results_table, curves_table)
    print(path)
    return 0


#: commands a batch step cannot run: ``spark-sql`` replaces the process, ``batch`` nests
NOT_IN_BATCH = ("batch", "spark-sql")


def _batch(args: argparse.Namespace) -> int:
    """Run each ``--step`` as ``tally <COMMAND>`` through :func:`main`, in this process.

    Every step is parsed before the first runs, so a mistyped step fails the batch
    (exit 2) before Spark starts. A step's exit code is what ``tally <COMMAND>`` would
    return, logged as ``batch step NAME: exit CODE``; an unexpected exception counts as
    exit 1 and is logged with its traceback. Returns 0, or the first failed step's code
    after naming every failed step on stderr (``tally: batch failed: NAME; NAME``).
    """
    parser = build_parser()
    steps = []
    for name, command in args.steps:
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise ConfigError(f"batch step {name!r}: {exc}: {command}") from None
        if not argv or argv[0] in NOT_IN_BATCH:
            raise ConfigError(
                f"batch step {name!r} must be a tally command other than "
                f"{' or '.join(NOT_IN_BATCH)}, got {command!r}"
            )
        try:
            parser.parse_args(argv)
        except SystemExit:  # argparse printed the usage error
            raise ConfigError(f"batch step {name!r} does not parse: {command}") from None
        steps.append((name, command, argv))

    failed: list[tuple[str, int]] = []
    for name, command, argv in steps:
        log.info("batch step %s: tally %s", name, command)
        try:
            code = main(argv)
        except Exception:
            log.exception("batch step %s failed", name)
            code = 1
        log.info("batch step %s: exit %d", name, code)
        if code:
            failed.append((name, code))
            if not args.keep_going:
                break
    if not failed:
        return 0
    print(f"tally: batch failed: {'; '.join(name for name, _ in failed)}", file=sys.stderr)
    return failed[0][1]


def _sql(args: argparse.Namespace) -> int:
    from tally.sql_shell import run_sql

    return run_sql(args.query, args.file, args.format, args.max_rows, args.timing)


def _spark_sql(args: argparse.Namespace) -> int:
    from tally.spark.spark_sql import exec_spark_sql

    exec_spark_sql(args.args)


def _demo_data(args: argparse.Namespace) -> int:
    from tally.demo import write_demo_dataset

    path = write_demo_dataset(args.path, rows=args.rows, seed=args.seed, kind=args.kind)
    log.info("demo dataset (%s): %s rows in %s", args.kind, f"{args.rows:,}", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
