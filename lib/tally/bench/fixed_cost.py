"""A job's fixed cost: a small ``tally evaluate`` and a one-row ``tally sql`` against a bare
local Spark start, each a fresh process as a user runs it, in one run.

Cases (each run ``--repeats`` times, interleaved, so that load changes hit them alike):

- ``bare``: plain Python starts ``SparkSession`` with ``local[2]``, counts
  ``spark.range(1000)`` and stops; no Hive, no Tally, no conf (the reference);
- ``bare_cds``: the same with Java class-data sharing (an archive written by an untimed
  run first): what sharing alone saves on Spark's own start;
- ``evaluate``: ``tally evaluate`` of a 1,000-row binary Parquet file with the default
  metrics, in a workspace with its own copy of the project's ``conf/`` (so its own Derby
  metastore and warehouse), after an untimed first run that created the tables and the
  class-data sharing archive (:mod:`tally.spark.class_sharing`);
- ``evaluate_no_cds``: the same with ``TALLY_CDS=off``;
- ``sql``: ``tally sql "SELECT metric, value FROM tally.metrics WHERE …"`` returning one row.

Reports the median wall time of each case and the ratios ``evaluate / bare`` and
``sql / bare`` (targets ≤ 1.3 and ≤ 1.1, issue 17), writes them to the ``fixed_cost``
key of ``docs/benchmarks.json`` and prints a Markdown table.

``python -m tally.bench.fixed_cost`` or ``make bench-fixed``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tally.bench import report

PROJECT_ROOT = Path(__file__).resolve().parents[3]
RUN_DATE = "2026-01-01"
ROWS = 1000
CONFIG = """\
model: fixed_cost
input: {path: data/small, format: parquet}
columns: {label: label, score: score}
"""
QUERY = (
    "SELECT metric, value FROM tally.metrics WHERE model = 'fixed_cost' "
    f"AND run_date = DATE'{RUN_DATE}' AND slice = 'ALL' AND metric = 'roc_auc'"
)
#: The bare start: ``sys.argv[1]`` is ``dump`` when this run writes the sharing archive
#: (then it waits for its JVM, which writes the archive as it exits).
BARE = """\
import sys
from pyspark import SparkContext
from pyspark.sql import SparkSession
spark = SparkSession.builder.master("local[2]").getOrCreate()
spark.range(1000).count()
proc = SparkContext._gateway.proc
spark.stop()
if sys.argv[1:] == ["dump"]:
    proc.stdin.close()
    sys.exit(proc.wait())
"""
CASES = ("bare", "bare_cds", "evaluate", "evaluate_no_cds", "sql")
TARGETS = {"evaluate": 1.3, "sql": 1.1}
CDS_QUIET = "-Xlog:cds=off,cds+dynamic=off"


def _env(workspace: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("SPARK_CONF_DIR", "PYSPARK_SUBMIT_ARGS")
    }
    env.update(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    env["TALLY_CACHE_DIR"] = str(workspace / "cache")
    env.update(extra)
    return env


def _command(case: str, workspace: Path) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of one case."""
    python, tally = sys.executable, str(Path(sys.executable).parent / "tally")
    conf = str(workspace / "conf")
    if case == "bare":
        return [python, "bare.py"], _env(workspace)
    if case in ("bare_cds", "bare_cds_dump"):
        flag = "ArchiveClassesAtExit" if case == "bare_cds_dump" else "SharedArchiveFile"
        archive = workspace / "cache" / "bare.jsa"
        submit = f"--driver-java-options '-XX:{flag}={archive} {CDS_QUIET}' pyspark-shell"
        env = _env(workspace, SPARK_CONF_DIR=str(workspace / "empty-conf"))
        env["PYSPARK_SUBMIT_ARGS"] = submit
        return [python, "bare.py", *(["dump"] if case == "bare_cds_dump" else [])], env
    if case in ("evaluate", "evaluate_no_cds"):
        env = _env(workspace, SPARK_CONF_DIR=conf)
        if case == "evaluate_no_cds":
            env["TALLY_CDS"] = "off"
        cmd = [tally, "evaluate", "--config", "job.yaml", "--run-date", RUN_DATE]
        return cmd, env
    if case == "sql":
        return [tally, "sql", QUERY], _env(workspace, SPARK_CONF_DIR=conf)
    raise ValueError(f"unknown case {case!r}")


def run_case(case: str, workspace: Path) -> float:
    """Wall seconds of one fresh process of ``case``; fails with its stderr when it fails."""
    cmd, env = _command(case, workspace)
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=workspace, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{case} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    if case == "sql":
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        if len(lines) != 3 or not lines[2].startswith("roc_auc"):  # header, rule, one row
            raise RuntimeError(f"sql: expected one roc_auc row, got:\n{done.stdout}")
    return wall


def prepare(workspace: Path) -> None:
    """A fresh workspace: conf copy, 1,000 rows of Parquet, the config, the bare script,
    then the untimed first runs (tables created, sharing archives written)."""
    shutil.rmtree(workspace, ignore_errors=True)
    (workspace / "conf").mkdir(parents=True)
    (workspace / "empty-conf").mkdir()
    for name in ("spark-defaults.conf", "log4j2.properties"):
        shutil.copy(PROJECT_ROOT / "conf" / name, workspace / "conf" / name)
    rng = np.random.default_rng(17)
    label = rng.integers(0, 2, ROWS)
    score = np.clip(rng.normal(0.35 + 0.3 * label, 0.2), 0.0, 1.0)
    (workspace / "data" / "small").mkdir(parents=True)
    table = pa.table({"label": label.astype(np.int64), "score": score})
    pq.write_table(table, workspace / "data" / "small" / "part-0.parquet")
    (workspace / "job.yaml").write_text(CONFIG)
    (workspace / "bare.py").write_text(BARE)
    for case in ("evaluate", "bare_cds_dump", "sql"):
        run_case(case, workspace)


def measure(workspace: Path, cases: Sequence[str], repeats: int) -> dict[str, list[float]]:
    """Wall seconds of each case, ``repeats`` rounds of every case in turn."""
    walls: dict[str, list[float]] = {c: [] for c in cases}
    for r in range(repeats):
        for case in cases:
            walls[case].append(run_case(case, workspace))
            print(f"round {r + 1}: {case} {walls[case][-1]:.1f} s", file=sys.stderr)
    return walls


def summary(walls: dict[str, list[float]]) -> dict[str, Any]:
    """Medians, and each case's median over the bare start's."""
    medians = {c: statistics.median(w) for c, w in walls.items()}
    bare = medians.get("bare")
    ratios = {c: m / bare for c, m in medians.items() if bare and c != "bare"}
    return {"walls_s": walls, "median_s": medians, "ratio_to_bare": ratios}


def markdown(result: dict[str, Any]) -> list[str]:
    """The table of a run: case, median wall, its ratio to the bare start, the target."""
    rows = []
    for case, median in result["median_s"].items():
        ratio = result["ratio_to_bare"].get(case)
        target = TARGETS.get(case)
        rows.append(
            f"| {case} | {median:.1f} | {'1.00' if ratio is None else f'{ratio:.2f}'} | "
            f"{'–' if target is None else f'≤ {target}'} |"
        )
    return [
        f"`{result['command']}` ({result['repeats']} rounds, {result['date']}; "
        f"load before/after: {result['load_before']} / {result['load_after']})",
        "",
        "| case | median wall (s) | / bare | target |",
        "|---|---:|---:|---|",
        *rows,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tally.bench.fixed_cost", description=__doc__)
    p.add_argument("--workdir", type=Path, default=PROJECT_ROOT / "data" / "bench" / "fixed")
    p.add_argument("--repeats", type=int, default=3, help="rounds of every case (default 3)")
    p.add_argument("--cases", default=",".join(CASES), help=f"default: {','.join(CASES)}")
    p.add_argument("--no-write", action="store_true", help="print only (no docs/benchmarks.*)")
    args = p.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    if "bare" not in cases or any(c not in CASES for c in cases):
        p.error(f"--cases: a subset of {','.join(CASES)} with bare")
    workspace = args.workdir.resolve()
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    prepare(workspace)
    result = summary(measure(workspace, cases, args.repeats))
    result.update(
        command="python -m tally.bench.fixed_cost " + " ".join(argv or sys.argv[1:]),
        repeats=args.repeats,
        date=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        load_before=load_before,
        load_after=" ".join(f"{x:.2f}" for x in os.getloadavg()),
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs",
    )
    print("\n".join(markdown(result)))
    if not args.no_write:
        json_path, _ = report.write(PROJECT_ROOT / "docs", "fixed_cost", result)
        print(f"wrote the fixed_cost key of {json_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
