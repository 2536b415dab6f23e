"""`tally report` as a user runs it: after a real `tally evaluate` in a folder with its own
metastore, the page it writes carries the model, the ROC AUC that `tally sql` returns for the
run, and every plot; an unknown model or a bad argument ends with one line and a non-zero exit.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import write_spark_conf
from tally.demo import write_demo_dataset
from tally.report import default_report_path, format_value

pytestmark = pytest.mark.e2e

TALLY = Path(sys.executable).parent / "tally"
MODEL = "rc_model"
RUN_DATE = "2026-11-22"
TABLES = ["--results-table", "tally_rc.metrics", "--curves-table", "tally_rc.curves"]
CONFIG = f"""\
model: {MODEL}
input: {{path: data, format: parquet}}
columns: {{label: label, score: score}}
metrics: {{buckets: 256, thresholds: [0.5], calibration_bins: 5}}
slices: [[country]]
output: {{table: tally_rc.metrics, counts_table: tally_rc.counts, curves_table: tally_rc.curves}}
"""
#: the plots of one score column: ROC, PR, reliability, and the trend of 4 metrics
PLOT_TITLES = [
    "ROC curve",
    "Precision-recall curve",
    "Calibration (reliability)",
    "roc_auc (last: ",
    "pr_auc (last: ",
    "log_loss (last: ",
    "count (last: ",
]


class Workspace:
    """A folder a user runs `tally` from, with its own Spark conf, metastore and data."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {
            **os.environ,
            "SPARK_CONF_DIR": str(write_spark_conf(root)),
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
        }
        write_demo_dataset(root / "data", rows=4_000, seed=11, files=1)
        (root / "job.yaml").write_text(CONFIG)

    def tally(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(TALLY), *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = Workspace(tmp_path_factory.mktemp("report-cli"))
    done = ws.tally("evaluate", "--config", "job.yaml", "--run-date", RUN_DATE)
    assert done.returncode == 0, done.stderr
    return ws


def test_tally_report_writes_the_page_with_the_runs_auc_and_plots(workspace):
    query = (
        "SELECT value FROM tally_rc.metrics WHERE model = '" + MODEL + "' AND run_date = "
        f"DATE'{RUN_DATE}' AND slice = 'ALL' AND metric = 'roc_auc' AND threshold IS NULL"
    )
    sql = workspace.tally("sql", "--format", "csv", query)
    assert sql.returncode == 0, sql.stderr
    [row] = list(csv.DictReader(io.StringIO(sql.stdout)))
    auc = row["value"]  # repr of the stored double

    # the model and both tables come from the config; the page goes to the default path
    done = workspace.tally("report", "--config", "job.yaml", "--run-date", RUN_DATE)
    assert done.returncode == 0, done.stderr
    expected = Path("reports") / f"{MODEL}-{RUN_DATE}.html"
    assert done.stdout.strip().splitlines() == [str(expected)]  # the path written, alone
    page = (workspace.root / expected).read_text(encoding="utf-8")

    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert f"<title>Tally report — {MODEL} — {RUN_DATE}</title>" in page
    # the AUC that SQL returns: exact in the headline cell, rounded in its text and legend
    assert f'data-metric="roc_auc" data-value="{auc}"' in page
    assert f">{format_value(float(auc))}</td>" in page
    assert f"ROC AUC {format_value(float(auc))} ± " in page
    # every plot is an inline SVG with its title; nothing is loaded from elsewhere
    svgs = re.findall(r"<svg\b.*?</svg>", page, flags=re.S)
    assert len(svgs) == page.count("<svg") == len(PLOT_TITLES)
    for title, svg in zip(PLOT_TITLES, svgs, strict=True):
        assert f"<title>{title}" in svg
        assert "<polyline" in svg or "<circle" in svg  # something is drawn
    assert "<img" not in page and "<script" not in page.lower()


def test_unknown_model_or_bad_arguments_fail_with_one_line(workspace):
    done = workspace.tally("report", "--model", "nope", "--run-date", RUN_DATE, *TABLES)
    assert done.returncode == 3  # InputError
    errors = [line for line in done.stderr.splitlines() if line.startswith("tally: error:")]
    assert errors == [
        f"tally: error: no results in tally_rc.metrics for model 'nope' on run_date {RUN_DATE}"
    ]
    assert done.stdout == ""
    assert not (workspace.root / "reports" / f"nope-{RUN_DATE}.html").exists()

    # checked before Spark starts (exit 2, no Spark output)
    for args, message in (
        (["--model", MODEL, "--run-date", "2026-13-01"], "--run-date must be a date"),
        (["--model", MODEL, "--run-date", RUN_DATE, "--days", "0"], "--days must be at least 1"),
        (["--run-date", RUN_DATE], "needs --model"),
    ):
        bad = workspace.tally("report", *args)
        assert bad.returncode == 2, bad.stderr
        [line] = bad.stderr.strip().splitlines()
        assert line.startswith("tally: error: ") and message in line
        assert "Spark" not in bad.stderr


def test_default_report_path_is_a_safe_file_name():
    day = dt.date(2026, 11, 22)
    assert default_report_path("ctr_v7", day) == Path("reports/ctr_v7-2026-11-22.html")
    assert default_report_path("../a b/c", day) == Path("reports/_a_b_c-2026-11-22.html")
    assert default_report_path("m", day, "out") == Path("out/m-2026-11-22.html")
