"""`make bench-partitions`: the whole table against one night, through the job's own steps."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from tally.bench import report
from tally.bench.partitions import FILES_PER_DAY, run_partitions


def test_one_night_reads_one_folder_of_files(spark, tmp_path: Path) -> None:
    days, rows_per_day = 4, 2_000
    payload = run_partitions(spark, tmp_path / "days", days, rows_per_day, repeats=1)

    whole, one = payload["cases"]
    folders = sorted((tmp_path / "days").glob("ds=*"))
    assert len(folders) == days
    assert whole["files"] == days * FILES_PER_DAY and one["files"] == FILES_PER_DAY
    assert whole["reader"] == one["reader"] == "arrow"
    assert one["rows"] == pq.read_table(folders[-1]).num_rows == rows_per_day
    assert whole["rows"] == days * rows_per_day
    assert payload["files_ratio"] == days
    assert "One night of 4" in "\n".join(report.partitions_md({**payload, "command": "x"}))
