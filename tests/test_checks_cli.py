"""A failing check as a nightly job meets it: `tally evaluate` writes everything, then exits 6
with one line per failed check; `tally check` re-evaluates the stored run the same way.

Both commands run as the two steps of one `tally batch` (one JVM start instead of two): each
step runs exactly as ``tally <COMMAND>`` would, and the batch logs each step's exit code."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from helpers import BIN, job_env, steps_of_batch
from tally.demo import write_demo_dataset

pytestmark = pytest.mark.e2e

TALLY = BIN / "tally"
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


def _rows(root: Path, table: str) -> list[dict]:
    """The rows of a table of the workspace's warehouse, read from its Parquet files."""
    return pq.read_table(root / "warehouse" / "tally_gate.db" / table).to_pylist()


def test_failing_check_writes_everything_then_exits_6_and_tally_check_agrees(tmp_path):
    write_demo_dataset(tmp_path / "data", rows=4_000, seed=11, files=1)
    (tmp_path / "job.yaml").write_text(CONFIG)
    env = job_env(tmp_path)

    def tally(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(TALLY), *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)

    done = tally(
        "batch", "--keep-going",
        "--step", "evaluate", f"evaluate --config job.yaml --run-date {RUN_DATE}",
        "--step", "check", f"check --config job.yaml --run-date {RUN_DATE}",
    )
    assert done.returncode == 6, done.stderr[-5000:]  # the first failed step's exit code
    assert done.stderr.splitlines()[-1] == "tally: batch failed: evaluate; check"
    evaluated, checked = steps_of_batch(done, ["evaluate", "check"]).values()
    assert evaluated.returncode == 6, evaluated.stderr[-5000:]

    # the metrics are there to look at
    metrics = {r["metric"]: r["value"] for r in _rows(tmp_path, "metrics")
               if r["slice"] == "ALL" and r["threshold"] is None}
    auc = metrics["roc_auc"]
    assert metrics["count"] + metrics["invalid_rows"] == 4_000 and auc < 0.99

    # one line per failed check, the stored value rounded to 4 significant digits
    failed = [line for line in evaluated.stderr.splitlines() if line.startswith("tally: ")]
    assert failed == [f"tally: check failed: roc_auc >= 0.99 on ALL: {auc:.4g}"]
    assert "at org.apache" not in done.stderr  # Spark's stack traces stay off the terminal

    # the checks table says why
    checks = {r["check"]: r for r in _rows(tmp_path, "checks")}
    assert set(checks) == {"roc_auc >= 0.99", "count >= 1", "invalid_rows / rows read <= 0.5"}
    gate = checks["roc_auc >= 0.99"]
    assert (gate["passed"], gate["value"], gate["limit"]) == (False, auc, 0.99)
    assert (gate["model"], gate["score_column"], gate["slice"]) == ("gate", "score", "ALL")
    assert checks["count >= 1"]["passed"] and checks["count >= 1"]["value"] == metrics["count"]
    ratio = checks["invalid_rows / rows read <= 0.5"]
    assert ratio["passed"] and ratio["value"] == metrics["invalid_rows"] / 4_000

    # tally check: from the stored results, the same verdict and exit code (its table is
    # the batch's only output)
    assert checked.returncode == 6, checked.stderr[-5000:]
    assert [line for line in checked.stderr.splitlines()
            if line.startswith("tally: check ")] == failed
    table = done.stdout.splitlines()
    assert table[0].split() == ["score_column", "slice", "check", "value", "limit", "passed",
                                "message"]
    assert sum(" false " in f" {line} " for line in table[2:]) == 1
    assert len(table) == 2 + 3
    assert len(_rows(tmp_path, "checks")) == 3  # replaced, not appended
