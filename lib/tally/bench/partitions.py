"""One night out of thirty: what a partition filter saves the arrow reader.

A scored table grows by one ``ds=YYYY-MM-DD`` folder a night, and a nightly job reads
one of them (``input.where: ds = '{run_date}'``). This benchmark writes ``days`` such
folders of the binary benchmark data and evaluates, through the job's own steps
(:func:`tally.spark.selection.select_rows`, :func:`tally.spark.count.choose_reader`,
:func:`tally.evaluation.measure`), the whole table and the last night alone. It
reports the files each run read, from the reader itself, and the wall time of each
(median of ``repeats``), as ratios whole / one night.
"""

from __future__ import annotations

import datetime as dt
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from pyspark.sql import SparkSession

from tally.bench.data import binary_chunk
from tally.config import JobConfig, parse_config
from tally.evaluation import measure, plan_of
from tally.run_date import render_input
from tally.spark.count import choose_reader
from tally.spark.selection import select_rows

FIRST_DAY = dt.date(2026, 11, 1)
FILES_PER_DAY = 2
MANIFEST = "_partitions.json"


def write_days(root: Path, days: int, rows_per_day: int) -> Path:
    """``root/ds=<day>/part-<i>.parquet`` for ``days`` days; kept when already written."""
    manifest = root / MANIFEST
    expected = f"{days} {rows_per_day} {FILES_PER_DAY}"
    if manifest.exists() and manifest.read_text() == expected:
        return root
    shutil.rmtree(root, ignore_errors=True)
    per_file = rows_per_day // FILES_PER_DAY
    for d in range(days):
        folder = root / f"ds={FIRST_DAY + dt.timedelta(days=d)}"
        folder.mkdir(parents=True)
        for i in range(FILES_PER_DAY):
            chunk = binary_chunk(per_file, d * FILES_PER_DAY + i)
            pq.write_table(chunk, folder / f"part-{i}.parquet")
    manifest.write_text(expected)
    return root


def _config(root: Path, where: str | None) -> JobConfig:
    source: dict[str, Any] = {"path": str(root)}
    if where is not None:
        source["where"] = where
    raw = {"model": "bench", "input": source, "columns": {"label": "label", "score": "score"}}
    return parse_config(raw)


def _one_run(
    spark: SparkSession, config: JobConfig, run_date: dt.date
) -> tuple[float, int, int, str]:
    """Wall seconds, files read, rows counted and the reader's name of one evaluation."""
    started = time.perf_counter()
    selection = select_rows(spark, render_input(config.input, run_date))
    reader = choose_reader(spark, selection.df, plan_of(config), selection.source)
    evaluation = measure(selection.df, config, reader)
    try:
        wall = time.perf_counter() - started
        files = getattr(reader, "files", -1)  # the Spark SQL reader does not list files
        return wall, files, evaluation.overall.rows, reader.name
    finally:
        evaluation.release()


def run_partitions(
    spark: SparkSession, root: Path, days: int = 30, rows_per_day: int = 1_000_000, repeats: int = 3
) -> dict[str, Any]:
    """The whole table against its last day, each evaluated ``repeats`` times after a warm-up."""
    write_days(root, days, rows_per_day)
    last_day = FIRST_DAY + dt.timedelta(days=days - 1)
    cases = {"whole table": None, "one day": "ds = '{run_date}'"}
    results = []
    for case, where in cases.items():
        config = _config(root, where)
        _one_run(spark, config, last_day)  # warm-up: JIT, Python workers
        runs = [_one_run(spark, config, last_day) for _ in range(repeats)]
        results.append(
            {
                "case": case,
                "where": where,
                "reader": runs[0][3],
                "files": runs[0][1],
                "rows": runs[0][2],
                "wall_s": statistics.median(r[0] for r in runs),
                "walls_s": [r[0] for r in runs],
            }
        )
    whole, one = results
    return {
        "days": days,
        "rows_per_day": rows_per_day,
        "files_per_day": FILES_PER_DAY,
        "repeats": repeats,
        "cases": results,
        "files_ratio": whole["files"] / one["files"] if one["files"] > 0 else None,
        "wall_ratio": whole["wall_s"] / one["wall_s"] if one["wall_s"] > 0 else None,
    }
