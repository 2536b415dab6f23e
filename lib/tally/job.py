"""One evaluation run: read the input, count in one pass, compute metrics, write results."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession

from tally.config import InputConfig, JobConfig
from tally.counts import BinaryCounts
from tally.errors import InputError, InvalidRowsError
from tally.metrics.binary import binary_metrics
from tally.spark.counting import count_binary_df
from tally.spark.results import RunKey, result_rows, write_results

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSummary:
    """What the job did, for the closing log line and for callers."""

    rows_read: int
    invalid_rows: int
    metrics_written: int
    wall_seconds: float
    table: str
    model: str
    run_date: dt.date

    def line(self) -> str:
        rate = self.rows_read / self.wall_seconds if self.wall_seconds > 0 else 0.0
        return (
            f"read {self.rows_read:,} rows ({self.invalid_rows:,} invalid) in "
            f"{self.wall_seconds:.1f} s ({rate:,.0f} rows/s); wrote {self.metrics_written} "
            f"metrics to {self.table} for model={self.model!r} run_date={self.run_date}"
        )


def read_input(spark: SparkSession, source: InputConfig) -> DataFrame:
    """The input DataFrame, or an InputError naming the missing path or table."""
    try:
        if source.table is not None:
            return spark.table(source.table)
        return spark.read.format(source.format).options(**source.options).load(source.path)
    except AnalysisException as exc:
        where = f"table {source.table}" if source.table else f"path {source.path}"
        first_line = str(exc).strip().splitlines()[0]
        raise InputError(f"cannot read input {where}: {first_line}") from exc


def evaluate(spark: SparkSession, config: JobConfig, run_date: dt.date) -> RunSummary:
    """Evaluate the configured binary score column and replace its results for ``run_date``."""
    started = time.monotonic()
    df = read_input(spark, config.input)
    columns = config.columns
    counts = count_binary_df(
        df, columns.label, columns.score, config.metrics.buckets, config.metrics.thresholds
    )
    _check_invalid(counts, config.on_invalid)
    metrics = binary_metrics(counts, beta=config.metrics.beta)
    for m in metrics:
        if m.value is None:
            log.warning(
                "%s%s is null: %s",
                m.metric,
                "" if m.threshold is None else f"@{m.threshold:g}",
                m.reason,
            )
    key = RunKey(run_date=run_date, model=config.model, score_column=columns.score)
    rows = result_rows(key, metrics)
    write_results(spark, config.output.table, rows)
    return RunSummary(
        rows_read=counts.count + counts.invalid_rows,
        invalid_rows=counts.invalid_rows,
        metrics_written=len(rows),
        wall_seconds=time.monotonic() - started,
        table=config.output.table,
        model=config.model,
        run_date=run_date,
    )


def _check_invalid(counts: BinaryCounts, on_invalid: str) -> None:
    by_reason = {r: n for r, n in counts.invalid.items() if n}
    if not by_reason:
        return
    detail = ", ".join(f"{r}={n:,}" for r, n in by_reason.items())
    if on_invalid == "fail":
        raise InvalidRowsError(
            f"{counts.invalid_rows:,} invalid rows ({detail}) and on_invalid is 'fail'; "
            "nothing was written"
        )
    log.warning("skipped %s invalid rows: %s", f"{counts.invalid_rows:,}", detail)
