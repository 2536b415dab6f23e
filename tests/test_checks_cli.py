"""A failing check as a nightly job meets it: `tally evaluate` writes everything, then exits 6
with one line per failed check; `tally check` re-evaluates the stored run the same way.

Both run in this process through the CLI's entry point, ``tally.cli.main``, whose return value
is a ``tally`` process's exit code, on the suite's Spark session (each ``tally`` process would
cost a JVM start). Exit 6 from processes of their own is checked where a scheduler sees it:
``spark-submit`` under Airflow (``test_airflow_dag.py``); Spark's stack traces staying off the
terminal, in every ``tally`` command of ``test_end_to_end.py``."""

from __future__ import annotations

from tally.cli import main
from tally.demo import write_demo_dataset

RUN_DATE = "2026-11-22"
CONFIG = """\
model: gate
input: {path: data, format: parquet}
columns: {label: label, score: score}
metrics: {buckets: 256}
output: {table: tally_gate.metrics, counts_table: tally_gate.counts,
         curves_table: tally_gate.curves, checks_table: tally_gate.checks}
checks:
  - {metric: roc_auc, min: 0.99}
  - {metric: count, min: 1}
  - {metric: invalid_rows, max_ratio: 0.5}
"""


def _rows(spark, table: str) -> list[dict]:
    """The rows of one of the job's output tables."""
    return [r.asDict() for r in spark.table(f"tally_gate.{table}").collect()]


def test_failing_check_writes_everything_then_exits_6_and_tally_check_agrees(
    spark, tmp_path, capsys
):
    write_demo_dataset(tmp_path / "data", rows=4_000, seed=11, files=1)
    config = tmp_path / "job.yaml"
    config.write_text(CONFIG.replace("path: data", f"path: {tmp_path / 'data'}"))
    capsys.readouterr()
    assert main(["evaluate", "--config", str(config), "--run-date", RUN_DATE]) == 6
    evaluated = capsys.readouterr()

    # the metrics are there to look at
    metrics = {r["metric"]: r["value"] for r in _rows(spark, "metrics")
               if r["slice"] == "ALL" and r["threshold"] is None}
    auc = metrics["roc_auc"]
    assert metrics["count"] + metrics["invalid_rows"] == 4_000 and auc < 0.99

    # one line per failed check, the stored value rounded to 4 significant digits
    failed = [line for line in evaluated.err.splitlines() if line.startswith("tally: ")]
    assert failed == [f"tally: check failed: roc_auc >= 0.99 on ALL: {auc:.4g}"]

    # the checks table says why
    checks = {r["check"]: r for r in _rows(spark, "checks")}
    assert set(checks) == {"roc_auc >= 0.99", "count >= 1", "invalid_rows / rows read <= 0.5"}
    gate = checks["roc_auc >= 0.99"]
    assert (gate["passed"], gate["value"], gate["limit"]) == (False, auc, 0.99)
    assert (gate["model"], gate["score_column"], gate["slice"]) == ("gate", "score", "ALL")
    assert checks["count >= 1"]["passed"] and checks["count >= 1"]["value"] == metrics["count"]
    ratio = checks["invalid_rows / rows read <= 0.5"]
    assert ratio["passed"] and ratio["value"] == metrics["invalid_rows"] / 4_000

    # tally check: from the stored results, the same verdict and exit code, and its table
    assert main(["check", "--config", str(config), "--run-date", RUN_DATE]) == 6
    checked = capsys.readouterr()
    assert [line for line in checked.err.splitlines() if line.startswith("tally: check ")] == failed
    table = checked.out.splitlines()
    assert table[0].split() == ["score_column", "slice", "check", "value", "limit", "passed",
                                "message"]
    assert sum(" false " in f" {line} " for line in table[2:]) == 1
    assert len(table) == 2 + 3
    assert len(_rows(spark, "checks")) == 3  # replaced, not appended
