"""The multiclass benchmark's data and floor (``make bench-multiclass``), without Spark: the
floor's confusion counts equal scikit-learn's on the rows read back, and a dataset is
the same rows however it is generated."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from sklearn.metrics import accuracy_score

from tally.bench import multiclass as bench
from tally.bench.probe import Sample


@pytest.mark.parametrize(("kind", "rows"), [("multiclass", 5_000), ("pixels", 20 * 256)])
def test_floor_counts_the_rows_as_scikit_learn(tmp_path, monkeypatch, kind, rows):
    monkeypatch.setattr(bench, "CHUNK_ROWS", 1_024)  # several chunks, files and batches
    monkeypatch.setattr(bench, "FILE_CHUNKS", 2)
    path = bench.ensure(tmp_path, kind, rows)
    assert len(list(path.glob("*.parquet"))) > 1
    data = bench.Data(kind, path, rows)
    table = pq.read_table(path, columns=list(data.columns))
    y, p = table.column(0), table.column(1)
    if kind == "pixels":
        y, p = y.combine_chunks().flatten(), p.combine_chunks().flatten()
    y, p = y.to_numpy(), p.to_numpy()
    assert len(y) == rows and y.min() >= 0 and max(y.max(), p.max()) < bench.K
    got = bench.floor(data)
    assert got["rows"] == rows
    assert got["accuracy"] == pytest.approx(accuracy_score(y, p), rel=1e-12)
    assert bench.ensure(tmp_path, kind, rows) == path  # cached: the manifest matches


def test_report_states_each_ratio_against_the_floor_of_its_dataset(tmp_path):
    data = bench.Data("multiclass", tmp_path, 1_000)

    def row(key: str, cpu: float) -> bench.Row:
        return bench.Row(key, key, data, [Sample(1.0, cpu, 1.0, None, True)], {"accuracy": 0.5})

    text = bench.report([row("floor", 1.0), row("tally", 4.0)], "cmd", "1", "2")
    assert "| tally | multiclass | 1,000 | 1 (n=1) | 4 | 0.00 M | 1/4.00 | 0.500000 |" in text
