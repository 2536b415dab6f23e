"""The nightly shape end to end: scores served every day, labels landing up to 3 days later in
another table, one run per night joining them with ``input.query`` and run-date
placeholders, checks as the gate.

Ten daily partitions of scores (``scores/ds=2026-11-01`` … ``-10``) and labels in their own
partitions (``labels/dt=20261101`` … ``20261113``: a label lands 0 to 3 days after its
score). The run for date D (the DAG runs it on D + 3, ``conf/x.yaml@-3``) joins D's scores
with the labels that landed from D to D + 3. The nights 2026-11-06 … 09, then the 10th,
whose scores are degraded on purpose (noise, no longer ranking the positives first), run
through the CLI's entry point (``tally.cli.main``, whose return value is a ``tally``
process's exit code) on the suite's Spark session: each ``tally`` process would cost a JVM
start. A failed check's exit code 6 from a process of its own is checked where a scheduler
sees it: ``spark-submit`` under Airflow (``test_airflow_dag.py``), as are the night's tables
on the Hive metastore read by a later process. Expected numbers: the same join done in
pandas, scored by scikit-learn; the stored tables are read back from their Parquet files.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from tally.cli import main

pytestmark = pytest.mark.e2e

DAYS = [dt.date(2026, 11, d) for d in range(1, 11)]
#: 11-06 … 11-09: the checks' baseline is the last 3 nights (11-07 … 09), so 11-06 is a night
#: it must leave out
FIRST_NIGHTS = DAYS[5:9]
DEGRADED = DAYS[9]
ROWS_PER_DAY = 2_000
LABEL_DELAY = 3
BUCKETS = 4096

CONFIG = """\
model: fraud
input:
  query: |
    SELECT s.score, s.country, CASE WHEN l.request_id IS NULL THEN 0 ELSE 1 END AS label
    FROM parquet.`{scores}` s
    LEFT JOIN parquet.`{labels}` l
      ON l.request_id = s.request_id
     AND l.dt BETWEEN {{run_date_nodash}} AND {{run_date_nodash+3}}
    WHERE s.ds = '{{run_date}}'
columns: {{label: label, score: score}}
metrics: {{buckets: {buckets}, thresholds: [0.5]}}
slices: [[country]]
output: {{table: nightly.metrics, counts_table: nightly.counts,
         curves_table: nightly.curves, checks_table: nightly.checks}}
checks:
  - {{metric: count, min: 1000}}
  - {{metric: roc_auc, min: 0.75}}
  - {{metric: roc_auc, max_drop: 0.05, baseline: last_3_nights}}
"""



def write_inputs(root: Path) -> pd.DataFrame:
    """Scores and labels as Parquet partitions under ``root``; returns every served row with
    its true label and the day that label landed (``landed``; None: a negative)."""
    rng = np.random.default_rng(22)
    frames = []
    for i, day in enumerate(DAYS):
        label = rng.random(ROWS_PER_DAY) < 0.2
        signal = rng.normal(np.where(label, 0.62, 0.38), 0.12)
        if day == DEGRADED:  # the model broke: its scores no longer rank
            signal = rng.normal(0.45, 0.12, ROWS_PER_DAY)
        # bucket centres: the bucketed AUC is exact
        score = (np.clip(np.floor(signal * BUCKETS), 0, BUCKETS - 1) + 0.5) / BUCKETS
        # most labels land within the 3 days; one in ten a day too late for its run
        delay = rng.choice(LABEL_DELAY + 2, ROWS_PER_DAY, p=[0.3, 0.3, 0.2, 0.1, 0.1])
        landed = [day + dt.timedelta(days=int(d)) if y else None for y, d in zip(label, delay,
                                                                                   strict=True)]
        frames.append(pd.DataFrame({
            "request_id": np.arange(ROWS_PER_DAY) + i * ROWS_PER_DAY,
            "score": score,
            "country": rng.choice(["US", "DE", "BR"], ROWS_PER_DAY),
            "label": label.astype(int),
            "ds": day,
            "landed": landed,
        }))
    served = pd.concat(frames, ignore_index=True)
    for day, rows in served.groupby("ds"):
        folder = root / "scores" / f"ds={day.isoformat()}"
        folder.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(rows[["request_id", "score", "country"]],
                                            preserve_index=False), folder / "part-0.parquet")
    for day, rows in served[served.landed.notna()].groupby("landed"):
        folder = root / "labels" / f"dt={day.strftime('%Y%m%d')}"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"request_id": rows.request_id.to_numpy()}),
                       folder / "part-0.parquet")
    return served


def table_rows(folder: Path) -> pd.DataFrame:
    """A table read from its files (``folder``); partition columns as strings."""
    frame = pq.read_table(folder).to_pandas()
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = frame[name].astype(str)
    return frame


def evaluate_night(config: Path, night: str) -> int:
    """``tally evaluate`` of one night; its exit code."""
    return main(["evaluate", "--config", str(config), "--run-date", night])


def test_nightly_runs_join_late_labels_and_the_gate_fails_the_degraded_night(
    spark, tmp_path, capsys, caplog
):
    served = write_inputs(tmp_path)
    config = tmp_path / "job.yaml"
    config.write_text(CONFIG.format(
        scores=tmp_path / "scores", labels=tmp_path / "labels", buckets=BUCKETS))
    tables = Path(urlparse(spark.conf.get("spark.sql.warehouse.dir")).path) / "nightly.db"
    assert not tables.exists()  # the session's catalog holds no earlier nights
    caplog.set_level(logging.INFO, logger="tally")
    first, *others = [d.isoformat() for d in FIRST_NIGHTS]
    assert evaluate_night(config, first) == 0
    logged = "\n".join(caplog.messages)
    assert "input.query: SELECT s.score" in logged  # the rendered query is logged
    assert "AND l.dt BETWEEN 20261106 AND 20261109 WHERE s.ds = '2026-11-06'" in logged
    assert [evaluate_night(config, night) for night in others] == [0] * len(others)
    # what the earlier nights wrote, to show the last night leaves it alone
    shutil.copytree(tables / "metrics", tmp_path / "metrics-before-the-last-night")
    capsys.readouterr()
    # a failed check: the metrics and checks are written, then evaluate returns 6
    assert evaluate_night(config, DEGRADED.isoformat()) == 6
    degraded_log = capsys.readouterr().err
    before = table_rows(tmp_path / "metrics-before-the-last-night")

    # every night's metrics against scikit-learn on the same join, done in pandas
    metrics = table_rows(tables / "metrics")
    overall = metrics[(metrics.slice == "ALL") & metrics.threshold.isna()]
    auc = {}
    for day in [*FIRST_NIGHTS, DEGRADED]:
        rows = served[served.ds == day]
        in_time = rows.landed.notna() & (rows.landed <= day + dt.timedelta(days=LABEL_DELAY))
        y = in_time.astype(int).to_numpy()
        assert (y <= rows.label.to_numpy()).all() and y.sum() < rows.label.sum()  # late ones
        night = overall[overall.run_date == day.isoformat()].set_index("metric").value
        assert night["count"] == ROWS_PER_DAY
        assert night["positives"] == y.sum()
        auc[day] = night["roc_auc"]
        assert auc[day] == pytest.approx(roc_auc_score(y, rows.score), abs=1e-12)
        for country, group in rows.groupby("country"):
            sliced = metrics[(metrics.run_date == day.isoformat())
                             & (metrics.slice == f"country={country}")
                             & (metrics.metric == "count")]
            assert sliced.value.tolist() == [len(group)]
    assert min(auc[d] for d in FIRST_NIGHTS) > 0.8 and auc[DEGRADED] < 0.6

    # the gate: one line per failed check, and the checks table says why
    baseline = np.mean([auc[d] for d in DAYS[6:9]])  # the 3 nights before
    failed = [ln for ln in degraded_log.splitlines() if ln.startswith("tally: ")]
    assert len(failed) == 2, degraded_log[-3000:]
    assert failed[0] == f"tally: check failed: roc_auc >= 0.75 on ALL: {auc[DEGRADED]:.4g}"
    assert failed[1].startswith(
        "tally: check failed: roc_auc drop <= 0.05 vs the mean of the last 3 nights on ALL: "
        f"{auc[DEGRADED]:.4g} (baseline {baseline:.4g}"
    )
    checks = table_rows(tables / "checks")
    tonight = checks[checks.run_date == DEGRADED.isoformat()].set_index("check")
    assert not tonight.loc["roc_auc >= 0.75", "passed"]
    assert tonight.loc["roc_auc >= 0.75", "value"] == auc[DEGRADED]
    drop = tonight.loc["roc_auc drop <= 0.05 vs the mean of the last 3 nights"]
    assert not drop.passed
    assert drop.baseline == pytest.approx(baseline, abs=1e-12)
    assert tonight.loc["count >= 1000", "passed"]
    earlier = checks[checks.run_date != DEGRADED.isoformat()]
    assert len(earlier) == 3 * len(FIRST_NIGHTS) and earlier.passed.all()

    # the other nights' results are untouched
    after = metrics[metrics.run_date != DEGRADED.isoformat()]
    key = ["run_date", "score_column", "slice", "metric", "threshold"]
    pd.testing.assert_frame_equal(
        before.sort_values(key).reset_index(drop=True)[list(before.columns)],
        after.sort_values(key).reset_index(drop=True)[list(before.columns)],
    )
