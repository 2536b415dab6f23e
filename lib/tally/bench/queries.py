"""Many queries, one start: the seconds a ``tally sql`` query takes once Spark is up.

A user who looks at last night's metrics asks several small questions of the results
table. ``tally sql --file`` (and its prompt) runs them in one session, so only the first
pays for the JVM and the Hive catalog. This benchmark:

1. prepares a workspace (cached under ``--workdir``) as a user has one: the project's
   ``conf/``, a demo dataset, one ``tally evaluate`` with slices by country, and the
   results of that night copied to ``--days`` nights in all (one ``INSERT`` of shifted run
   dates), so that queries prune partitions of a month of sliced metrics;
2. starts one ``tally sql --file --timing`` process with :data:`QUERIES` (11 small queries
   of the kind ``docs/results.md`` shows) and reads the time of each statement from its
   ``--timing`` lines (``spark.sql`` to the last row printed);
3. reports the first query's time, the median and maximum of the others, and the whole
   process's wall time; then, for scale, the wall time of one process that runs the
   second query alone (``tally sql "<query>"``, what each query cost before).

``--repeats N`` runs step 2 N times (one process each) and step 3 once.

``python -m tally.bench.queries`` or ``make bench-queries``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tally.demo import write_demo_dataset

PROJECT_ROOT = Path(__file__).resolve().parents[3]
FIRST_NIGHT = dt.date(2026, 11, 1)
CONFIG = """\
model: demo
input: {path: data/demo, format: parquet}
columns: {label: label, score: score}
metrics: {buckets: 65536, thresholds: [0.3, 0.5, 0.7]}
slices: [[country]]
output: {table: tally.metrics, counts_table: tally.counts, curves_table: tally.curves}
"""
#: The statements timed: one to warm up, then ten small ones on the results table.
QUERIES = [
    "SELECT count(*) AS rows FROM tally.metrics",
    "SELECT metric, value FROM tally.metrics WHERE model = 'demo' AND run_date = DATE'{last}' "
    "AND slice = 'ALL' AND threshold IS NULL",
    "SELECT run_date, value FROM tally.metrics WHERE model = 'demo' AND slice = 'ALL' "
    "AND metric = 'roc_auc' AND window_days = 1 ORDER BY run_date",
    "SELECT slice, value AS roc_auc FROM tally.metrics WHERE run_date = DATE'{last}' "
    "AND metric = 'roc_auc' ORDER BY slice",
    "SELECT threshold, max(CASE WHEN metric = 'precision' THEN value END) AS precision, "
    "max(CASE WHEN metric = 'recall' THEN value END) AS recall FROM tally.metrics "
    "WHERE model = 'demo' AND run_date = DATE'{last}' AND slice = 'ALL' "
    "AND threshold IS NOT NULL GROUP BY threshold ORDER BY threshold",
    "SELECT metric, reason FROM tally.metrics WHERE run_date = DATE'{last}' AND value IS NULL",
    "SELECT metric, value FROM tally.metrics WHERE run_date = DATE'{first}' "
    "AND slice = 'country=US' AND threshold = 0.5",
    "SELECT slice, value FROM tally.metrics WHERE run_date = DATE'{last}' AND metric = 'count'",
    "SELECT run_date, slice, value FROM tally.metrics WHERE metric = 'log_loss' "
    "AND slice IN ('country=DE', 'country=FR') AND run_date >= DATE'{last}' - 6",
    "SELECT metric, avg(value) AS mean, stddev(value) AS sd FROM tally.metrics "
    "WHERE slice = 'ALL' AND threshold IS NULL GROUP BY metric ORDER BY metric",
    "SELECT metric, value FROM tally.metrics WHERE model = 'demo' AND run_date = DATE'{last}' "
    "AND slice = 'country=JP' AND metric IN ('roc_auc', 'pr_auc', 'brier')",
]
TIMING = re.compile(r"^tally sql: (\d+) rows in ([0-9.]+) s$")


def _tally(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "SPARK_CONF_DIR": str(workspace / "conf"),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }
    tally = Path(sys.executable).parent / "tally"
    done = subprocess.run(
        [str(tally), *args], cwd=workspace, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"tally {' '.join(args[:1])} failed:\n{done.stderr[-3000:]}")
    return done


def prepare(workspace: Path, rows: int, days: int) -> None:
    """The workspace of the module docstring's step 1; kept when it was made the same way."""
    stamp = workspace / "_prepared"
    expected = f"{rows} {days}"
    if stamp.exists() and stamp.read_text() == expected:
        return
    shutil.rmtree(workspace, ignore_errors=True)
    (workspace / "conf").mkdir(parents=True)
    for name in ("spark-defaults.conf", "log4j2.properties"):
        shutil.copy(PROJECT_ROOT / "conf" / name, workspace / "conf" / name)
    write_demo_dataset(str(workspace / "data" / "demo"), rows=rows, seed=7, kind="binary")
    (workspace / "job.yaml").write_text(CONFIG)
    _tally(workspace, "evaluate", "--config", "job.yaml", "--run-date", str(FIRST_NIGHT))
    if days > 1:
        copy = (
            "INSERT INTO tally.metrics SELECT score_column, slice, metric, class, threshold, "
            "value, reason, date_add(run_date, CAST(d.id AS INT)) AS run_date, model, "
            f"window_days FROM tally.metrics CROSS JOIN range(1, {days}) AS d"
        )
        _tally(workspace, "sql", copy)
    stamp.write_text(expected)


def measure(workspace: Path, days: int) -> dict[str, float]:
    """One ``tally sql --file --timing`` run of :data:`QUERIES`: seconds per statement."""
    last = FIRST_NIGHT + dt.timedelta(days=days - 1)
    script = ";\n".join(q.format(first=FIRST_NIGHT, last=last) for q in QUERIES) + ";\n"
    (workspace / "queries.sql").write_text(script)
    started = time.perf_counter()
    done = _tally(workspace, "sql", "--file", "queries.sql", "--timing")
    wall = time.perf_counter() - started
    seconds = [float(m[2]) for m in map(TIMING.match, done.stderr.splitlines()) if m]
    if len(seconds) != len(QUERIES):
        raise RuntimeError(f"expected {len(QUERIES)} timing lines, got:\n{done.stderr}")
    rest = seconds[1:]
    return {
        "first_s": seconds[0],
        "median_s": statistics.median(rest),
        "max_s": max(rest),
        "process_wall_s": wall,
        "queries_after_first": len(rest),
    }


def one_query_process(workspace: Path, days: int) -> float:
    """Wall seconds of one ``tally sql "<query>"`` process running the second query alone."""
    last = FIRST_NIGHT + dt.timedelta(days=days - 1)
    started = time.perf_counter()
    _tally(workspace, "sql", QUERIES[1].format(first=FIRST_NIGHT, last=last))
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tally.bench.queries", description=__doc__)
    p.add_argument("--workdir", type=Path, default=PROJECT_ROOT / "data" / "bench" / "queries")
    p.add_argument("--rows", type=int, default=100_000, help="demo rows evaluated (default 100k)")
    p.add_argument("--days", type=int, default=30, help="nights in the results table")
    p.add_argument("--repeats", type=int, default=1, help="tally sql --file runs (default 1)")
    args = p.parse_args(argv)
    workspace = args.workdir.resolve()
    prepare(workspace, args.rows, args.days)
    for run in range(1, args.repeats + 1):
        result = measure(workspace, args.days)
        print(
            f"run {run}: tally sql --file, {len(QUERIES)} queries on {args.days} nights of "
            f"sliced metrics: first {result['first_s']:.2f} s; after the first, median "
            f"{result['median_s']:.3f} s, max {result['max_s']:.3f} s "
            f"({result['queries_after_first']} queries); whole process "
            f"{result['process_wall_s']:.1f} s",
            flush=True,
        )
    alone = one_query_process(workspace, args.days)
    print(f'one query in its own process (tally sql "..."): {alone:.1f} s')
    return 0


if __name__ == "__main__":
    sys.exit(main())
