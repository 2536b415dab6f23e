"""`tally report`: the HTML page built from real results and curves tables, checked against
the tables through SQL, then opened in headless Chromium (skipped when it is not installed:
`make browser` installs it).

Set TALLY_REPORT_ARTIFACTS=<folder> to keep the page and its screenshot there
(docs/report-example.png is made that way).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from tally.config import parse_config
from tally.demo import write_demo_dataset
from tally.errors import InputError
from tally.job import evaluate
from tally.metrics import MetricValue
from tally.report import (
    build_report,
    default_report_path,
    format_value,
    nice_ticks,
    svg_plot,
    write_report,
)
from tally.spark.results import RunKey, result_rows, write_results

DB = "tally_report_test"
RESULTS, CURVES, COUNTS = f"{DB}.metrics", f"{DB}.curves", f"{DB}.counts"
MODEL = "report"
DAY = dt.date(2026, 11, 22)
EARLIER = dt.date(2026, 11, 19)
PLOTS_PER_SCORE = 7  # ROC, PR, reliability, 4 trend plots
CHROMIUM = Path("/usr/bin/chromium")


def _config(data: Path) -> dict:
    return {
        "model": MODEL,
        "input": {"path": str(data), "format": "parquet"},
        "columns": {"label": "label", "score": ["score", "score_b"]},
        "metrics": {"buckets": 4096, "thresholds": [0.3, 0.5, 0.7]},
        "slices": [["country"]],
        "output": {"table": RESULTS, "counts_table": COUNTS, "curves_table": CURVES},
    }


@pytest.fixture(scope="module")
def tables(spark, tmp_path_factory):
    """Two nightly runs of two score columns (20,000 demo rows each, sliced by country)."""
    base = tmp_path_factory.mktemp("report")
    spark.sql(f"DROP DATABASE IF EXISTS {DB} CASCADE")
    for run_date, seed in ((EARLIER, 5), (DAY, 7)):
        data = write_demo_dataset(base / f"data-{seed}", rows=20_000, seed=seed, files=2)
        for part in data.glob("*.parquet"):  # a second model's scores: score³
            table = pq.read_table(part)
            score_b = pc.power(table["score"], pa.scalar(3.0, pa.float32()))
            pq.write_table(table.append_column("score_b", score_b), part)
        evaluate(spark, parse_config(_config(data)), run_date)
    # a model with null metrics and no curves, and text that must be escaped
    key = RunKey(run_date=DAY, model="sparse", score_column="s")
    odd = RunKey(run_date=DAY, model="sparse", score_column="s", slice="c=<script>x</script>")
    values = [
        MetricValue("count", 10.0),
        MetricValue("positives", 0.0),
        MetricValue("negatives", 10.0),
        MetricValue.undefined("roc_auc", "no positives & no pairs"),
        MetricValue.undefined("pr_auc", "no positives"),
    ]
    write_results(spark, RESULTS, result_rows(key, values) + result_rows(odd, values))
    yield base
    spark.sql(f"DROP DATABASE IF EXISTS {DB} CASCADE")


class Cells(HTMLParser):
    """The numeric cells of a report: (score column, slice or None, metric, exact value, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict] = []
        self.score: str | None = None
        self.slice: str | None = None
        self.open: dict | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "section" and "data-score-column" in a:
            self.score = a["data-score-column"]
        elif tag == "tr":
            self.slice = a.get("data-slice")
        elif tag == "td" and "data-metric" in a:
            self.open = {
                "score": self.score,
                "slice": self.slice,
                "metric": a["data-metric"],
                "value": float(a["data-value"]),
                "text": "",
            }

    def handle_data(self, data: str) -> None:
        if self.open is not None:
            self.open["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self.open is not None:
            self.cells.append(self.open)
            self.open = None
        elif tag == "tr":
            self.slice = None


def _cells(page: str) -> list[dict]:
    parser = Cells()
    parser.feed(page)
    return parser.cells


def _sql_values(spark, score: str, metric: str) -> dict[str, float | None]:
    rows = (
        spark.table(RESULTS)
        .filter(
            (F.col("model") == MODEL)
            & (F.col("run_date") == F.lit(DAY))
            & (F.col("window_days") == 1)
            & (F.col("score_column") == score)
            & (F.col("metric") == metric)
            & F.col("threshold").isNull()
        )
        .select("slice", "value")
        .collect()
    )
    return {r["slice"]: r["value"] for r in rows}


@pytest.fixture(scope="module")
def page(spark, tables) -> str:
    return build_report(spark, RESULTS, CURVES, MODEL, DAY, days=30)


def test_title_sections_and_plots(page):
    title = f"Tally report — {MODEL} — {DAY}"
    assert f"<title>{title}</title>" in page
    assert f"<h1>{title}</h1>" in page
    assert re.findall(r'data-score-column="([^"]+)"', page) == ["score", "score_b"]
    assert page.count("<svg") == 2 * PLOTS_PER_SCORE
    for heading in ("ROC curve", "Precision-recall curve", "Calibration (reliability)"):
        assert page.count(f"<title>{heading}</title>") == 2
    for metric in ("roc_auc", "pr_auc", "log_loss", "count"):
        assert page.count(f"<title>{metric} (last: ") == 2
    assert "<script" not in page.lower() and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert 'class="note"' not in page  # nothing is missing for this model


def test_roc_auc_shown_equals_the_table(spark, page):
    cells = _cells(page)
    for score in ("score", "score_b"):
        table = _sql_values(spark, score, "roc_auc")
        shown = {
            c["slice"] or "ALL": c
            for c in cells
            if c["score"] == score and c["metric"] == "roc_auc" and c["slice"] is not None
        }
        headline = [
            c for c in cells if c["score"] == score and c["metric"] == "roc_auc" and not c["slice"]
        ]
        assert headline and all(c["value"] == table["ALL"] for c in headline)
        assert all(c["text"] == format_value(table["ALL"]) for c in headline)
        assert set(shown) == set(table) - {"ALL"}
        for name, c in shown.items():
            assert c["value"] == table[name]
            assert c["text"] == format_value(table[name])
        # the legend of the ROC plot carries the same AUC, its bound and the DeLong CI
        bound = _sql_values(spark, score, "roc_auc_error_bound")["ALL"]
        low = _sql_values(spark, score, "roc_auc_ci_low")["ALL"]
        high = _sql_values(spark, score, "roc_auc_ci_high")["ALL"]
        legend = f"ROC AUC {format_value(table['ALL'])} ± {format_value(bound)}"
        assert legend in page
        assert f"DeLong CI [{format_value(low)}, {format_value(high)}]" in page


def test_slices_sorted_by_worst_auc(spark, page):
    for score in ("score", "score_b"):
        ordered = (
            spark.table(RESULTS)
            .filter(
                (F.col("model") == MODEL)
                & (F.col("run_date") == F.lit(DAY))
                & (F.col("score_column") == score)
                & (F.col("metric") == "roc_auc")
                & (F.col("slice") != "ALL")
            )
            .orderBy(F.col("value").asc_nulls_last(), "slice")
            .select("slice")
            .collect()
        )
        section = page.split(f'data-score-column="{score}"')[1].split("<section")[0]
        shown = re.findall(r'<tr data-slice="([^"]+)">', section)
        assert shown == [r["slice"] for r in ordered]
        assert len(shown) == 6  # the demo's six countries


def test_one_score_column_and_trend(spark, tables):
    page = build_report(spark, RESULTS, CURVES, MODEL, DAY, days=7, score_column="score_b")
    assert re.findall(r'data-score-column="([^"]+)"', page) == ["score_b"]
    assert page.count("<svg") == PLOTS_PER_SCORE
    assert f"from {DAY - dt.timedelta(days=6)} to {DAY}: 2 run dates" in page
    # a window that leaves the earlier run out
    page = build_report(spark, RESULTS, CURVES, MODEL, DAY, days=2, score_column="score_b")
    assert f"from {DAY - dt.timedelta(days=1)} to {DAY}: 1 run date " in page


def test_missing_data_gives_notes_and_escapes_text(spark, tables):
    page = build_report(spark, RESULTS, CURVES, "sparse", DAY)
    assert "roc_auc is null: no positives &amp; no pairs." in page
    assert "No ROC curve is stored" in page
    assert "No precision-recall curve is stored" in page
    assert "No reliability curve is stored" in page
    assert "roc_auc: no values in these days." in page
    assert "<script>" not in page
    assert 'data-slice="c=&lt;script&gt;x&lt;/script&gt;"' in page
    assert page.count("<svg") == 1  # only the trend of count has values


def test_unknown_model_date_or_table_raises(spark, tables):
    with pytest.raises(InputError, match=r"model 'nope'.*2026-11-22"):
        build_report(spark, RESULTS, CURVES, "nope", DAY)
    with pytest.raises(InputError, match=r"model 'report'.*2026-11-21"):
        build_report(spark, RESULTS, CURVES, MODEL, dt.date(2026, 11, 21))
    with pytest.raises(InputError, match=r"score column 'other'"):
        build_report(spark, RESULTS, CURVES, MODEL, DAY, score_column="other")
    with pytest.raises(InputError, match=rf"{DB}\.missing does not exist"):
        build_report(spark, f"{DB}.missing", CURVES, MODEL, DAY)
    page = build_report(spark, RESULTS, f"{DB}.no_curves", MODEL, DAY)  # a note, not a failure
    assert f"The curves table {DB}.no_curves does not exist" in page


def test_checks_of_the_run_open_the_page_failed_first(spark, tables):
    from tally.checks import Outcome
    from tally.spark.checks_table import write_checks

    checks = f"{DB}.checks"
    outcomes = [
        Outcome("score", "ALL", "roc_auc >= 0.5", "roc_auc", 0.81, None, 0.5, True),
        Outcome("score_b", "country=<b>", "roc_auc drop <= 0.01 vs the previous night", "roc_auc",
                0.7712, 0.8, 0.79, False, "baseline 0.8, change -0.0288"),
    ]
    write_checks(spark, checks, MODEL, DAY, outcomes)
    page = build_report(spark, RESULTS, CURVES, MODEL, DAY, checks_table=checks)
    section = page.split('<section class="checks">')[1].split("</section>")[0]
    assert "<h2>Checks: 1 passed, 1 failed</h2>" in section
    rows = re.findall(r'<tr data-check-passed="(true|false)">', section)
    assert rows == ["false", "true"]  # failed first
    assert "country=&lt;b&gt;" in section and "<b>" not in section
    assert 'data-value="0.7712"' in section and 'data-value="0.79"' in section
    assert "baseline 0.8, change -0.0288" in section
    assert page.index('<section class="checks">') < page.index("data-score-column")
    only_b = build_report(spark, RESULTS, CURVES, MODEL, DAY, score_column="score_b",
                          checks_table=checks)
    assert "Checks: 0 passed, 1 failed" in only_b
    for other in (f"{DB}.no_checks", None):  # no table, or none asked for: no section
        assert 'class="checks"' not in build_report(
            spark, RESULTS, CURVES, MODEL, DAY, checks_table=other
        )


def test_default_report_path_is_a_safe_file_name():
    day = dt.date(2026, 11, 22)
    assert default_report_path("ctr_v7", day) == Path("reports/ctr_v7-2026-11-22.html")
    assert default_report_path("../a b/c", day) == Path("reports/_a_b_c-2026-11-22.html")
    assert default_report_path("m", day, "out") == Path("out/m-2026-11-22.html")


def test_svg_helpers():
    assert nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0.871, 0.889) == [0.875, 0.88, 0.885]
    svg = svg_plot([], title="a <b>", x_label="x", y_label="y")
    assert svg.startswith("<svg") and svg.endswith("</svg>") and "a &lt;b&gt;" in svg
    assert format_value(None) == "—" and format_value(20000.0, "count") == "20,000"
    assert format_value(0.88068) == "0.8807" and format_value(4.4e-06) == "4.40e-06"


# --------------------------------------------------------------------------- browser


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "Uncaught" in line or "ERROR:CONSOLE" in line]


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium is missing: `make browser` installs it"
)
def test_report_renders_in_chromium(page, tmp_path):
    path = write_report(tmp_path / "report.html", page)
    url = path.resolve().as_uri()

    dom = _chromium(tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert f"<title>Tally report — {MODEL} — {DAY}</title>" in dom.stdout
    assert dom.stdout.count("<svg") == 2 * PLOTS_PER_SCORE
    assert dom.stdout.count("<polyline") == page.count("<polyline")
    assert _console_errors(dom.stderr) == []

    png = tmp_path / "report.png"
    shot = _chromium(
        tmp_path, f"--screenshot={png}", "--window-size=1200,3000", "--hide-scrollbars", url
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert _console_errors(shot.stderr) == []
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    assert (width, height) == (1200, 3000)
    assert len(data) > 50_000  # a blank 1200×3000 page compresses to a few KiB

    keep = os.environ.get("TALLY_REPORT_ARTIFACTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / "report.html")
        shutil.copy(png, Path(keep) / "report.png")
