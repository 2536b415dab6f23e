"""A run's checks: values and baselines read from the results table, outcomes written.

The checks table holds one row per check and score column, partitioned by
(run_date, model) and replaced on rerun like the results (:mod:`tally.spark.tables`).
Only nightly rows (``window_days = 1``) are read: tonight's, and those of the
model's previous nightly runs (``run_date`` before tonight's, newest first), as
many as the longest baseline asks for. Nothing here reads the input, so
``tally check`` re-evaluates a stored run. The rules are :mod:`tally.checks`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Sequence

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tally.checks import ROWS_METRICS, STD_ERROR_OF, Check, Night, Outcome, Stored, evaluate_check
from tally.checks_config import score_columns_of
from tally.config import JobConfig
from tally.errors import ChecksFailedError, InputError
from tally.spark.tables import replace_partitions

log = logging.getLogger(__name__)

CHECKS_SCHEMA = T.StructType(
    [
        T.StructField("score_column", T.StringType(), False),
        T.StructField("slice", T.StringType(), False),
        T.StructField("check", T.StringType(), False),
        T.StructField("metric", T.StringType(), False),
        T.StructField("value", T.DoubleType(), True),
        T.StructField("baseline", T.DoubleType(), True),
        T.StructField("limit", T.DoubleType(), True),
        T.StructField("passed", T.BooleanType(), False),
        T.StructField("message", T.StringType(), True),
        T.StructField("run_date", T.DateType(), False),
        T.StructField("model", T.StringType(), False),
    ]
)
PARTITION_COLUMNS = ("run_date", "model")
#: One run's numbers: (score column, slice) -> its :data:`~tally.checks.Night`.
RunNumbers = dict[tuple[str, str], dict[tuple[str, float | None, str | None], Stored]]


def run_checks(
    spark: SparkSession, config: JobConfig, run_date: dt.date, *, checked: bool = False
) -> list[Outcome]:
    """Evaluate and write ``config.checks`` of the stored run; raise when one failed.

    Raises :class:`~tally.errors.ChecksFailedError` (exit 6) after writing when a
    check failed; returns the outcomes otherwise (none without checks). ``checked``:
    :func:`tally.spark.tables.replace_partitions`.
    """
    outcomes = write_outcomes(spark, config, run_date, checked=checked)
    raise_on_failure(config, outcomes)
    return outcomes


def write_outcomes(
    spark: SparkSession, config: JobConfig, run_date: dt.date, *, checked: bool = False
) -> list[Outcome]:
    """Evaluate ``config.checks`` on the stored run and replace its rows in the checks table."""
    if not config.checks:
        return []
    outcomes = evaluate_checks(spark, config, run_date)
    table = config.output.checks_table
    write_checks(spark, table, config.model, run_date, outcomes, checked=checked)
    failed = sum(not o.passed for o in outcomes)
    for o in outcomes:
        if o.passed:
            log.info("check passed: %s", o.line(_several_columns(config)))
    log.info(
        "checks of %s on %s: %d passed, %d failed; written to %s",
        config.model,
        run_date,
        len(outcomes) - failed,
        failed,
        config.output.checks_table,
    )
    return outcomes


def raise_on_failure(config: JobConfig, outcomes: Sequence[Outcome]) -> None:
    """:class:`~tally.errors.ChecksFailedError` with one line per failed outcome, if any."""
    failed = [o.line(_several_columns(config)) for o in outcomes if not o.passed]
    if failed:
        raise ChecksFailedError(failed)


def _several_columns(config: JobConfig) -> bool:
    """Whether lines name the score column (the config has more than one)."""
    return len(config.columns.scores) > 1 or bool(config.compare)


def evaluate_checks(spark: SparkSession, config: JobConfig, run_date: dt.date) -> list[Outcome]:
    """Every check on every score column it applies to, from the results table."""
    tonight, history = stored_runs(spark, config.output.table, config.model, run_date,
                                   config.checks)
    outcomes = []
    for check in config.checks:
        columns = (check.score_column,) if check.score_column else score_columns_of(
            check.metric, config
        )
        for column in columns:
            key = (column, check.slice)
            nights: list[Night] = [run.get(key, {}) for run in history]
            outcomes.append(evaluate_check(check, column, tonight.get(key), nights))
    return outcomes


def stored_runs(
    spark: SparkSession, table: str, model: str, run_date: dt.date, checks: Sequence[Check]
) -> tuple[RunNumbers, list[RunNumbers]]:
    """The numbers the checks need: tonight's run, and the previous runs newest first.

    Raises :class:`~tally.errors.InputError` when the table or tonight's run is missing.
    """
    nightly = _nightly_rows(spark, table, model)
    nights = max((c.baseline.nights for c in checks if c.baseline), default=0)
    previous: list[dt.date] = []
    if nights:
        before = nightly.filter(F.col("run_date") < F.lit(run_date)).select("run_date")
        dates = before.distinct().orderBy(F.col("run_date").desc()).limit(nights).collect()
        previous = [r["run_date"] for r in dates]
    rows = (
        nightly.filter(
            F.col("run_date").isin([run_date, *previous])
            & F.col("metric").isin(sorted(_needed_metrics(checks)))
            & F.col("slice").isin(sorted({c.slice for c in checks}))
        )
        .select("run_date", "score_column", "slice", "metric", "threshold", "class", "value",
                "reason")
        .collect()
    )
    by_date: dict[dt.date, RunNumbers] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        numbers = by_date[r["run_date"]][(r["score_column"], r["slice"])]
        numbers[(r["metric"], r["threshold"], r["class"])] = Stored(r["value"], r["reason"])
    if run_date not in by_date and nightly.filter(F.col("run_date") == F.lit(run_date)).isEmpty():
        raise InputError(
            f"no results in {table} for model {model!r} on run_date {run_date}: "
            "run tally evaluate for that date first"
        )
    return by_date.get(run_date, {}), [by_date.get(d, {}) for d in previous]


def _nightly_rows(spark: SparkSession, table: str, model: str) -> DataFrame:
    try:
        results = spark.table(table)
    except AnalysisException as exc:
        raise InputError(f"results table {table} does not exist") from exc
    return results.filter((F.col("model") == F.lit(model)) & (F.col("window_days") == F.lit(1)))


def _needed_metrics(checks: Sequence[Check]) -> set[str]:
    """The checked metrics, their standard errors, and the rows read for ``max_ratio``."""
    metrics = {c.metric for c in checks}
    metrics |= {STD_ERROR_OF[c.metric] for c in checks if c.significant}
    if any(c.bound == "max_ratio" for c in checks):
        metrics |= set(ROWS_METRICS)
    return metrics


def write_checks(
    spark: SparkSession,
    table: str,
    model: str,
    run_date: dt.date,
    outcomes: Sequence[Outcome],
    *,
    checked: bool = False,
) -> None:
    """Replace the (run_date, model) partition of ``table`` with ``outcomes``."""
    rows = [
        (
            o.score_column,
            o.slice,
            o.check,
            o.metric,
            o.value,
            o.baseline,
            o.limit,
            o.passed,
            o.message,
            run_date,
            model,
        )
        for o in outcomes
    ]
    df = spark.createDataFrame(rows, schema=CHECKS_SCHEMA).coalesce(1)
    role = "output.checks_table"
    replace_partitions(spark, table, df, CHECKS_SCHEMA, PARTITION_COLUMNS, role, checked=checked)
