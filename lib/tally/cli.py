"""The ``tally`` command: ``evaluate``, ``sql``, ``rollup``, ``report`` and ``demo-data``.

Failures a user can cause end with one line on stderr (``tally: error: ...``)
and a non-zero exit code; config problems are found before Spark starts.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from collections.abc import Sequence

from tally.errors import ConfigError, TallyError

log = logging.getLogger("tally")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tally", description="Evaluate model scores on Spark from mergeable count tables."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("evaluate", help="run an evaluation job and write its metrics")
    ev.add_argument("--config", required=True, help="job config (YAML)")
    ev.add_argument("--run-date", required=True, help="partition to (re)write, YYYY-MM-DD")
    ev.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set metrics.buckets=1024 (repeatable)",
    )

    sql = sub.add_parser("sql", help="run a SQL query against the catalog and print the rows")
    sql.add_argument("query")
    sql.add_argument("--format", choices=("table", "csv"), default="table")
    sql.add_argument("--max-rows", type=int, default=1000, help="print at most this many rows")

    roll = sub.add_parser(
        "rollup", help="metrics over a date range from stored counts (no rescan of the input)"
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
        "report", help="write a self-contained HTML report of one model and run date"
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
        "--config", help="take the model, output.table and output.curves_table from it"
    )
    rep.add_argument("--results-table", help="default: output.table or tally.metrics")
    rep.add_argument("--curves-table", help="default: output.curves_table or tally.curves")
    rep.add_argument("--score-column", help="only this score column (default: all of them)")

    demo = sub.add_parser("demo-data", help="write the deterministic demo dataset (Parquet)")
    demo.add_argument("--path", default="data/demo")
    demo.add_argument("--rows", type=int, default=2_000_000)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument(
        "--kind", choices=("binary", "multilabel", "multiclass"), default="binary"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "sql":
            return _sql(args)
        if args.command == "rollup":
            return _rollup(args)
        if args.command == "report":
            return _report(args)
        return _demo_data(args)
    except TallyError as exc:
        print(f"tally: error: {exc}", file=sys.stderr)
        return exc.exit_code


def _evaluate(args: argparse.Namespace) -> int:
    from tally.config import load_config, parse_run_date

    config = load_config(args.config, args.overrides)  # before Spark starts
    run_date = parse_run_date(args.run_date)
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


def _rollup(args: argparse.Namespace) -> int:
    from tally.config import DEFAULT_COUNTS_TABLE, DEFAULT_OUTPUT_TABLE, load_config, parse_run_date

    start, end = parse_run_date(args.start), parse_run_date(args.end)
    counts_table, output_table, options = DEFAULT_COUNTS_TABLE, DEFAULT_OUTPUT_TABLE, None
    if args.config:
        config = load_config(args.config)
        counts_table, output_table = config.output.counts_table, config.output.table
        options = config.metrics
    counts_table = args.counts_table or counts_table
    output_table = None if args.no_write else (args.output_table or output_table)

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
    _print_table(header, [["" if v is None else _format_value(v) for v in r] for r in shown])
    where = f"; written to {output_table}" if output_table else ""
    log.info("rollup of %s from %s to %s: %d metrics%s", args.model, start, end, len(rows), where)
    return 0


def _report(args: argparse.Namespace) -> int:
    from tally.config import DEFAULT_CURVES_TABLE, DEFAULT_OUTPUT_TABLE, load_config, parse_run_date

    run_date = parse_run_date(args.run_date)  # arguments are checked before Spark starts
    if args.days < 1:
        raise ConfigError(f"--days must be at least 1, got {args.days}")
    model, results_table, curves_table = args.model, DEFAULT_OUTPUT_TABLE, DEFAULT_CURVES_TABLE
    if args.config:
        config = load_config(args.config)
        model = model or config.model
        results_table, curves_table = config.output.table, config.output.curves_table
    if not model:
        raise ConfigError("tally report needs --model (or --config, whose model it takes)")
    results_table = args.results_table or results_table
    curves_table = args.curves_table or curves_table

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
    )
    path = write_report(args.out or default_report_path(model, run_date), page)
    log.info("report of %s on %s from %s and %s", model, run_date, results_table, curves_table)
    print(path)
    return 0


def _print_table(header: list[str], cells: list[list[str]]) -> None:
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def _sql(args: argparse.Namespace) -> int:
    from pyspark.errors import AnalysisException, ParseException

    from tally.spark.session import get_spark, prepare_local_environment

    prepare_local_environment()
    spark = get_spark("tally-sql")
    try:
        df = spark.sql(args.query)
        rows = df.take(args.max_rows)
    except (AnalysisException, ParseException) as exc:
        raise TallyError(f"query failed: {str(exc).strip().splitlines()[0]}") from exc
    header = df.columns
    cells = [["" if v is None else _format_value(v) for v in row] for row in rows]
    if args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(cells)
    else:
        _print_table(header, cells)
    return 0


def _format_value(value: object) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _demo_data(args: argparse.Namespace) -> int:
    from tally.demo import write_demo_dataset

    path = write_demo_dataset(args.path, rows=args.rows, seed=args.seed, kind=args.kind)
    log.info("demo dataset (%s): %s rows in %s", args.kind, f"{args.rows:,}", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
