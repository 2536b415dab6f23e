"""The job as users run it: `tally evaluate`, `tally rollup`, `tally report`, `tally sql` and
`tally batch`, in a real subprocess in one folder with its own metastore.

Every `tally` process starts a JVM and the Hive catalog (most of its time), so the commands
run once, as the steps of one `tally batch --keep-going` in a module-scoped fixture
(``runs``); each step's exit code and log are checked as the command's own: `tally evaluate`
for the first day (the metrics against scikit-learn on the same rows) and for the second
(its counts are checked through the rollup), `tally report` for the first day (the page
carries the AUC that the query returns), `tally rollup` of both days (the window's metrics
against scikit-learn on their union), `tally evaluate` again for the second day with other
thresholds (a rerun replaces rows), `tally evaluate` of a missing input path and of a folder
with a corrupt file that a task of the arrow reader meets (exit 3, one line naming it, quiet:
no Spark warnings, Python or Java traces), and last `tally sql`, which reads back every row of
the results table.

`spark-submit jobs/evaluate.py` runs in ``test_packaging.py`` (the packaged job) and
``test_airflow_dag.py`` (the DAG's tasks, whose tables a later process reads).

Each subprocess gets secrets in its environment that no log may show. Other failures that
need Spark (a missing column, invalid rows with ``on_invalid: fail``, a report of an unknown
model) run in-process through ``tally.cli.main``, whose return value is the process's exit
code; the checks made before Spark starts run as subprocesses (they start no JVM).
"""

from __future__ import annotations

import csv
import io
import re
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    log_loss,
    roc_auc_score,
)

from helpers import (
    BIN,
    PYARROW_SAYS,
    corrupt_footer,
    job_env,
    steps_of_batch,
    write_parquet,
)
from tally.cli import main
from tally.report import format_value

pytestmark = pytest.mark.e2e

DAY1, DAY2 = "2026-11-22", "2026-11-23"
SEEDS = {DAY1: 3, DAY2: 4}  # the rows of each day
ROWS = 20_000
SCORES = ("score", "second")
COUNTRIES = ("de", "fr", "us", None)
SECRET = "s3cr3t-9f2c41"
CONFIG = f"""\
model: e2e
input: {{path: data/{DAY1}, format: parquet}}
columns: {{label: label, score: [score, second]}}
metrics: {{buckets: 65536, thresholds: [0.3, 0.5], calibration_bins: 5}}
slices: [[country]]
output: {{table: tally_e2e.metrics, counts_table: tally_e2e.counts, curves_table: tally_e2e.curves}}
"""
#: the plots of one score column in the report: ROC, PR, reliability, the trend of 4 metrics
PLOT_TITLES = [
    "ROC curve",
    "Precision-recall curve",
    "Calibration (reliability)",
    "roc_auc (last: ",
    "pr_auc (last: ",
    "log_loss (last: ",
    "count (last: ",
]


def day_rows(seed: int) -> pa.Table:
    """One day of rows: a float32 score with signal and a few nulls; a second score with ties,
    NaN and out-of-range values; a few null labels; a country with nulls."""
    rng = np.random.default_rng(seed)
    label = (rng.random(ROWS) < 0.3).astype(np.int8)
    logit = -1.0 + 2.0 * label + rng.normal(0.0, 1.2, ROWS)
    score = (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    second = np.clip(rng.normal(0.35 + 0.25 * label, 0.2), 0.0, 1.0)
    second[: ROWS // 4] = np.round(second[: ROWS // 4], 2)  # ties
    second[rng.random(ROWS) < 0.005] = np.nan
    second[rng.random(ROWS) < 0.005] = 1.5
    country = [COUNTRIES[i] for i in rng.integers(0, len(COUNTRIES), ROWS)]
    return pa.table(
        {
            "label": pa.array(label, mask=rng.random(ROWS) < 0.002),
            "score": pa.array(score, mask=rng.random(ROWS) < 0.001),
            "second": pa.array(second),
            "country": pa.array(country, pa.string()),
        }
    )


def as_arrays(tables: list[pa.Table]) -> dict[str, np.ndarray]:
    """The rows for the references: nulls as NaN (labels, scores), None (country)."""
    union = pa.concat_tables(tables)
    out = {c: union.column(c).to_numpy(zero_copy_only=False).astype(np.float64)
           for c in ("label", *SCORES)}
    out["country"] = np.array(union.column("country").to_pylist(), dtype=object)
    return out


def valid_rows(rows: dict[str, np.ndarray], score: str) -> np.ndarray:
    y, s = rows["label"], rows[score]
    return ~np.isnan(y) & ~np.isnan(s) & (s >= 0) & (s <= 1)


class Workspace:
    """A folder a user runs `tally` from, with its own Spark conf, metastore and data."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = job_env(root, TALLY_TEST_SECRET=SECRET, AWS_SECRET_ACCESS_KEY=SECRET + "-aws")
        self.days = {day: day_rows(seed) for day, seed in SEEDS.items()}
        for day, table in self.days.items():
            columns = {name: table.column(name) for name in table.column_names}
            write_parquet(root / "data" / day, columns, files=3)
        (root / "job.yaml").write_text(CONFIG)

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            args, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=300
        )

    def tally(self, *args: str) -> subprocess.CompletedProcess:
        return self.run(str(BIN / "tally"), *args)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("e2e"))


#: What the ``sql`` step selects: every row of the results table, as CSV.
SQL_COLUMNS = "run_date,window_days,score_column,slice,metric,threshold,value"
SQL = ("SELECT CAST(run_date AS STRING) AS run_date, window_days, score_column, slice, metric, "
       "threshold, value FROM tally_e2e.metrics")


CORRUPT_DAY = "2026-11-25"


def corrupt_input(workspace: Workspace, spark) -> str:
    """Folder ``corrupt`` of the workspace: 4 files of rows, the one Spark lists last with its
    footer gone (not the arrow reader's first file, which it opens on the driver: a task
    meets it), and a schema summary that keeps Spark's schema inference off the data files.
    Returns the corrupt file's URI as Spark lists it."""
    folder = workspace.root / "corrupt"
    rows = workspace.days[DAY1].slice(0, 400)
    write_parquet(folder, {name: rows.column(name) for name in rows.column_names}, files=4)
    pq.write_metadata(rows.schema, folder / "_common_metadata")
    bad = [f for f in spark.read.parquet(str(folder)).inputFiles() if "/part-" in f][-1]
    corrupt_footer(bad)
    return bad


@pytest.fixture(scope="module")
def runs(workspace: Workspace, spark) -> dict[str, subprocess.CompletedProcess]:
    """The commands of the module docstring, in that order; each test checks its exit code."""
    workspace.corrupt_file = corrupt_input(workspace, spark)
    second_day = f"--run-date {DAY2} --set input.path=data/{DAY2}"
    batch = workspace.tally(
        "batch", "--keep-going",
        "--step", "evaluate", f"evaluate --config job.yaml --run-date {DAY1}",
        "--step", "second day", f"evaluate --config job.yaml {second_day}",
        "--step", "report", f"report --config job.yaml --run-date {DAY1}",
        "--step", "rollup", f"rollup --model e2e --from {DAY1} --to {DAY2} --config job.yaml",
        "--step", "rerun",
        f"evaluate --config job.yaml {second_day} --set 'metrics.thresholds=[0.4, 0.6]'",
        "--step", "nowhere", "evaluate --config job.yaml --run-date 2026-11-24 "
        "--set input.path=no/such/folder",
        "--step", "corrupt",
        f"evaluate --config job.yaml --run-date {CORRUPT_DAY} --set input.path=corrupt",
        "--step", "sql", f'sql --format csv --max-rows 1000000 "{SQL}"',
    )
    assert batch.returncode == 3, batch.stderr[-5000:]  # the failed steps' (nowhere, corrupt)
    done = steps_of_batch(batch, [
        "evaluate", "second day", "report", "rollup", "rerun", "nowhere", "corrupt", "sql"])
    # stdout: the report's path and the rollup's table, then the sql step's CSV (printed last)
    printed, _, rows = done["sql"].stdout.partition(SQL_COLUMNS + "\n")
    for name, step in done.items():
        step.stdout = SQL_COLUMNS + "\n" + rows if name == "sql" else printed
    return done


@pytest.fixture(scope="module")
def stored(runs) -> list[dict[str, str]]:
    """Every row of the results table, as `tally sql --format csv` printed it."""
    assert runs["sql"].returncode == 0, runs["sql"].stderr
    return list(csv.DictReader(io.StringIO(runs["sql"].stdout)))


def metrics_of(stored: list[dict[str, str]], day: str, score: str, window: int = 1) -> dict:
    """{(metric, threshold): value} of slice ALL of one score column, a night or a window."""
    rows = [r for r in stored if (r["run_date"], r["window_days"], r["score_column"], r["slice"])
            == (day, str(window), score, "ALL")]
    got = {(r["metric"], r["threshold"]): r["value"] for r in rows}
    assert len(got) == len(rows), "a metric appears twice"
    return got


# --- tally evaluate ----------------------------------------------------------------------------


def test_tally_evaluate_writes_metrics_that_match_scikit_learn(workspace, runs, stored):
    done = runs["evaluate"]
    assert done.returncode == 0, done.stderr
    rows = as_arrays([workspace.days[DAY1]])
    null_label = np.isnan(rows["label"])
    invalid = int((~valid_rows(rows, "score")).sum())  # the first score column's
    assert f"read {ROWS:,} rows ({invalid} invalid)" in done.stderr

    for score in SCORES:
        got = metrics_of(stored, DAY1, score)
        valid = valid_rows(rows, score)
        y, s = rows["label"][valid], rows[score][valid]
        assert float(got[("count", "")]) == len(y)
        assert float(got[("invalid_rows", "")]) == (~valid).sum()
        assert float(got[("invalid_rows_null_label", "")]) == null_label.sum()
        if score == "score":  # nulls, read as NaN here
            assert float(got[("invalid_rows_null_score", "")]) == (~valid & ~null_label).sum()
        else:
            out_of_range = ~null_label & (rows[score] > 1)
            assert float(got[("invalid_rows_score_out_of_range", "")]) == out_of_range.sum()
            nan = ~null_label & np.isnan(rows[score])
            assert float(got[("invalid_rows_nan_score", "")]) == nan.sum()
        bound = float(got[("roc_auc_error_bound", "")])
        assert abs(float(got[("roc_auc", "")]) - roc_auc_score(y, s)) <= bound + 1e-12
        if score == "score":  # continuous scores, 65,536 buckets
            assert bound < 1e-4
        assert float(got[("pr_auc", "")]) == pytest.approx(average_precision_score(y, s), abs=1e-3)
        assert float(got[("log_loss", "")]) == pytest.approx(log_loss(y, s), rel=1e-12)
        assert float(got[("brier", "")]) == pytest.approx(brier_score_loss(y, s), rel=1e-12)
        for t in (0.3, 0.5):
            tn, fp, fn, tp = confusion_matrix(y, s >= t, labels=[0, 1]).ravel()
            assert [float(got[(m, str(t))]) for m in ("tp", "fp", "tn", "fn")] == [tp, fp, tn, fn]


def test_a_rerun_replaces_its_rows_and_leaves_the_others(runs, stored):
    assert runs["second day"].returncode == 0, runs["second day"].stderr
    assert f"read {ROWS:,} rows" in runs["second day"].stderr
    assert runs["rerun"].returncode == 0, runs["rerun"].stderr  # thresholds 0.4 and 0.6

    keys = [(r["run_date"], r["window_days"], r["score_column"], r["slice"], r["metric"],
             r["threshold"]) for r in stored]
    assert len(keys) == len(set(keys))  # the rerun replaced, not appended

    def thresholds(day: str, window: int) -> set[str]:
        return {r["threshold"] for r in stored if (r["run_date"], r["window_days"], r["metric"])
                == (day, str(window), "tp")}

    assert thresholds(DAY2, 1) == {"0.4", "0.6"}
    assert thresholds(DAY1, 1) == {"0.3", "0.5"}  # the other date is untouched
    assert thresholds(DAY2, 2) == {"0.3", "0.5"}  # and so is the rollup's window on DAY2


def test_bad_config_fails_before_spark_starts_naming_the_key(workspace):
    done = workspace.tally("evaluate", "--config", "job.yaml", "--run-date", DAY1,
                           "--set", "metrics.bukets=10")
    assert done.returncode == 2
    assert "unknown key 'metrics.bukets'; did you mean 'metrics.buckets'?" in done.stderr
    assert "SparkContext" not in done.stderr and "Spark" not in done.stderr


def test_no_log_shows_the_environment(runs):
    done = runs["evaluate"]
    assert "model='e2e'" in done.stderr and f"done: read {ROWS:,} rows" in done.stderr
    for name, done in runs.items():
        assert SECRET not in done.stdout, name
        assert SECRET not in done.stderr, name


# --- tally rollup ------------------------------------------------------------------------------


def parse_printed_table(text: str) -> list[dict[str, str]]:
    """Rows of the fixed-width table `tally` prints (header, dashes, rows)."""
    lines = text.splitlines()
    dashes = next(i for i, line in enumerate(lines) if line.startswith("---"))
    spans, start = [], 0
    for width in (len(d) for d in lines[dashes].split("  ")):
        spans.append((start, start + width))
        start += width + 2

    def cells(line: str) -> list[str]:
        return [line[a:b].strip() for a, b in spans]

    header = cells(lines[dashes - 1])
    return [dict(zip(header, cells(line), strict=True)) for line in lines[dashes + 1 :] if line]


def test_tally_rollup_prints_the_window_metrics(workspace, runs):
    done = runs["rollup"]
    assert done.returncode == 0, done.stderr
    assert f"rollup of e2e from {DAY1} to {DAY2}" in done.stderr
    assert "written to tally_e2e.metrics" in done.stderr

    printed = parse_printed_table(done.stdout)
    assert list(printed[0]) == ["score_column", "slice", "metric", "threshold", "value", "reason"]
    slices = ["ALL", *(f"country={'null' if c is None else c}" for c in COUNTRIES)]
    assert {(r["score_column"], r["slice"]) for r in printed} == {
        (s, c) for s in SCORES for c in slices
    }
    got = {
        (r["score_column"], r["slice"], r["metric"], r["threshold"]): r["value"] for r in printed
    }
    rows = as_arrays(list(workspace.days.values()))
    for score in SCORES:
        valid = valid_rows(rows, score)
        y, s = rows["label"], rows[score]
        yv, sv = y[valid], s[valid]
        assert float(got[(score, "ALL", "count", "")]) == valid.sum()
        assert float(got[(score, "ALL", "invalid_rows", "")]) == (~valid).sum()
        for t in (0.3, 0.5):
            tn, fp, fn, tp = confusion_matrix(yv, sv >= t).ravel()
            counts = [float(got[(score, "ALL", m, str(t))]) for m in ("tp", "fp", "tn", "fn")]
            assert counts == [tp, fp, tn, fn]
        bound = float(got[(score, "ALL", "roc_auc_error_bound", "")])
        auc = float(got[(score, "ALL", "roc_auc", "")])
        assert abs(auc - roc_auc_score(yv, sv)) <= bound + 1e-12
        assert float(got[(score, "ALL", "log_loss", "")]) == pytest.approx(
            log_loss(yv, sv), rel=1e-9
        )
        for country in COUNTRIES:
            inside = valid & (rows["country"] == country)
            label = f"country={'null' if country is None else country}"
            assert float(got[(score, label, "count", "")]) == inside.sum()
            assert float(got[(score, label, "positives", "")]) == (y[inside] == 1).sum()


# --- tally report ------------------------------------------------------------------------------


def test_tally_report_writes_the_page_with_the_runs_auc_and_plots(workspace, runs, stored):
    done = runs["report"]
    assert done.returncode == 0, done.stderr
    # the model and both tables come from the config; the page goes to the default path
    expected = Path("reports") / f"e2e-{DAY1}.html"
    # the path written, alone: the batch's next output is the rollup's table header
    printed = done.stdout.splitlines()
    assert printed[0] == str(expected) and printed[1].split()[0] == "score_column"
    page = (workspace.root / expected).read_text(encoding="utf-8")

    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert f"<title>Tally report — e2e — {DAY1}</title>" in page
    # the AUC that SQL returns (repr of the stored double): exact in the headline cell,
    # rounded in its text and legend
    for score in SCORES:
        auc = metrics_of(stored, DAY1, score)[("roc_auc", "")]
        assert f'data-metric="roc_auc" data-value="{auc}"' in page
        assert f">{format_value(float(auc))}</td>" in page
        assert f"ROC AUC {format_value(float(auc))} ± " in page
    # every plot is an inline SVG with its title; nothing is loaded from elsewhere
    svgs = re.findall(r"<svg\b.*?</svg>", page, flags=re.S)
    assert len(svgs) == page.count("<svg") == len(SCORES) * len(PLOT_TITLES)
    for title, svg in zip(PLOT_TITLES * len(SCORES), svgs, strict=True):
        assert f"<title>{title}" in svg
        assert "<polyline" in svg or "<circle" in svg  # something is drawn
    assert "<img" not in page and "<script" not in page.lower()


def test_report_arguments_are_checked_before_spark_starts(workspace):
    for args, message in (
        (["--model", "e2e", "--run-date", "2026-13-01"], "--run-date must be a date"),
        (["--model", "e2e", "--run-date", DAY1, "--days", "0"], "--days must be at least 1"),
        (["--run-date", DAY1], "needs --model"),
    ):
        bad = workspace.tally("report", *args)
        assert bad.returncode == 2, bad.stderr
        [line] = bad.stderr.strip().splitlines()
        assert line.startswith("tally: error: ") and message in line
        assert "Spark" not in bad.stderr


# --- failures that need Spark, in-process ----------------------------------------------------


@pytest.fixture(scope="module")
def in_process(spark, tmp_path_factory) -> Path:
    """A config whose tables live in the session's catalog, with one successful run on DAY1."""
    root = tmp_path_factory.mktemp("cli")
    path = write_parquet(root / "data", {
        "label": pa.array([1, 0, 1, 0, None, 1], pa.float64()),
        "score": pa.array([0.9, 0.2, 0.7, None, 0.4, 0.6], pa.float64()),
    })
    config = root / "job.yaml"
    config.write_text(
        "model: cli\n"
        f"input: {{path: {path}, format: parquet}}\n"
        "columns: {label: label, score: score}\n"
        "output: {table: tally_cli.metrics, counts_table: tally_cli.counts,"
        " curves_table: tally_cli.curves}\n"
    )
    assert main(["evaluate", "--config", str(config), "--run-date", DAY1]) == 0
    return config


def test_a_missing_or_corrupt_input_fails_quietly_naming_it(workspace, runs, stored):
    done = runs["nowhere"]
    assert done.returncode == 3
    assert "tally: error: cannot read input path no/such/folder" in done.stderr
    assert not [r for r in stored if r["run_date"] == "2026-11-24"]  # nothing written
    done = runs["corrupt"]  # met inside a task of the arrow reader: one line, exit 3
    assert done.returncode == 3
    errors = [line for line in done.stderr.splitlines() if line.startswith("tally: ")]
    assert errors == [
        f"tally: error: cannot read input file {workspace.corrupt_file}: {PYARROW_SAYS}"]
    assert "Traceback" not in done.stderr
    assert not [r for r in stored if r["run_date"] == CORRUPT_DAY]
    # Spark's own warnings and Java traces stay quiet, here and in every tally command
    for name, done in runs.items():
        assert "at org.apache" not in done.stderr and " WARN " not in done.stderr, name


def test_failures_exit_non_zero_and_write_nothing(spark, in_process, capsys):
    day = "2026-11-24"
    args = ["evaluate", "--config", str(in_process), "--run-date", day]
    capsys.readouterr()
    assert main([*args, "--set", "columns.score=prob"]) == 3
    assert "score column 'prob' not found" in capsys.readouterr().err
    assert main([*args, "--set", "on_invalid=fail"]) == 4
    assert "null_label=1, null_score=1" in capsys.readouterr().err
    for table in ("metrics", "counts", "curves"):
        stored = spark.table(f"tally_cli.{table}")
        assert stored.where(f"run_date = DATE'{day}'").count() == 0
        assert stored.where(f"run_date = DATE'{DAY1}'").count() > 0


def test_report_of_an_unknown_model_fails_with_one_line(in_process, tmp_path, capsys):
    out = tmp_path / "nope.html"
    capsys.readouterr()
    code = main(["report", "--model", "nope", "--run-date", DAY1, "--out", str(out),
                 "--results-table", "tally_cli.metrics", "--curves-table", "tally_cli.curves"])
    assert code == 3  # InputError
    printed = capsys.readouterr()
    errors = [line for line in printed.err.splitlines() if line.startswith("tally: error:")]
    assert errors == [f"tally: error: no results in tally_cli.metrics for model 'nope' on "
                      f"run_date {DAY1}"]
    assert printed.out == ""
    assert not out.exists()


# --- tally batch: several commands, one process ----------------------------------------------


def batch_steps(in_process: Path, out: Path) -> list[str]:
    """A page, a report of an unknown model (exit 3), then a query: ``--step`` arguments."""
    tables = "--results-table tally_cli.metrics --curves-table tally_cli.curves"
    return [
        "--step", "page of cli",
        f"report --config {in_process} --run-date {DAY1} --out {out / 'cli.html'}",
        "--step", "page of nope",
        f"report --model nope --run-date {DAY1} {tables} --out {out / 'nope.html'}",
        "--step", "rows",
        f"sql --format csv \"SELECT metric FROM tally_cli.metrics WHERE run_date = DATE'{DAY1}' "
        "AND metric = 'count' AND slice = 'ALL'\"",
    ]


def test_batch_keep_going_runs_every_step_then_fails_naming_the_failed(
    in_process, tmp_path, capsys
):
    capsys.readouterr()
    assert main(["batch", "--keep-going", *batch_steps(in_process, tmp_path)]) == 3
    printed = capsys.readouterr()
    assert (tmp_path / "cli.html").is_file() and not (tmp_path / "nope.html").exists()
    assert printed.out.splitlines() == [str(tmp_path / "cli.html"), "metric", "count"]
    assert [line for line in printed.err.splitlines() if line.startswith("tally: ")] == [
        f"tally: error: no results in tally_cli.metrics for model 'nope' on run_date {DAY1}",
        "tally: batch failed: page of nope",
    ]


def test_batch_stops_at_the_first_failure_and_checks_every_step_first(
    in_process, tmp_path, capsys
):
    steps = batch_steps(in_process, tmp_path)
    capsys.readouterr()
    assert main(["batch", *steps]) == 3
    printed = capsys.readouterr()
    assert printed.out.splitlines() == [str(tmp_path / "cli.html")]  # no rows: stopped before
    assert printed.err.splitlines()[-1] == "tally: batch failed: page of nope"

    (tmp_path / "cli.html").unlink()
    for bad, reason in (("evaluate --no-such-flag", "does not parse"),
                        ("spark-sql -e 'SELECT 1'", "must be a tally command other than"),
                        ("sql 'SELECT 1", "No closing quotation")):
        assert main(["batch", *steps, "--step", "bad", bad]) == 2
        err = capsys.readouterr().err
        assert "tally: error: batch step 'bad'" in err and reason in err, err
        assert not (tmp_path / "cli.html").exists()  # nothing ran
