"""``make bench-shapes`` (``tally.bench.shapes``): each shape stores the same rows as declared,
and the floor counts them as numpy does on the same values.

No timing here (benchmarks are not tests): the data, the floor's AUC against a numpy
histogram and scikit-learn, and the marginal arithmetic of a row of the table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from tally.bench import shapes
from tally.bench.methods import Context
from tally.bench.probe import Sample
from tally.counts import bucket_of
from tally.metrics.binary import roc_auc

ROWS = 300_000  # three row groups of the 128ki shape, the last one short


def read(dataset) -> pa.Table:
    return pa.concat_tables(pq.read_table(f) for f in dataset.files)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shapes")


STORAGE = [s for s in shapes.SHAPES if (s.positive_rate, s.null_every) == (0.1, 0)]


@pytest.mark.parametrize("shape", STORAGE, ids=lambda s: s.name)
def test_every_storage_variant_stores_the_base_rows_as_declared(
    data: Path, shape: shapes.Shape
) -> None:
    base = read(shapes.ensure(data, shapes.BASE, ROWS, log=lambda _: None))
    dataset = shapes.ensure(data, shape, ROWS, log=lambda _: None)
    assert shapes.cached(data, shape, ROWS) == dataset
    table = read(dataset)
    assert table.schema == shape.schema()
    np.testing.assert_array_equal(
        table["label"].to_numpy().astype(np.int8), base["label"].to_numpy()
    )
    score = table["score"].to_numpy()
    np.testing.assert_array_equal(score.astype(np.float32), base["score"].to_numpy())
    if shape.score == "float64":
        assert not np.array_equal(score, score.astype(np.float32).astype(np.float64))
    files = [pq.ParquetFile(f).metadata for f in dataset.files]
    assert len(files) == -(-ROWS // shape.file_rows)
    groups = [m.row_group(i).num_rows for m in files for i in range(m.num_row_groups)]
    assert max(groups) == min(shape.row_group_rows, ROWS) and sum(groups) == ROWS
    assert 0.08 < base["label"].to_numpy().mean() < 0.12


def test_content_variants_change_the_rows_as_declared(data: Path) -> None:
    half = read(shapes.ensure(data, shapes.BY_NAME["positives_50"], ROWS, log=lambda _: None))
    assert 0.48 < half["label"].to_numpy().mean() < 0.52
    nulls = read(shapes.ensure(data, shapes.BY_NAME["label_nulls"], ROWS, log=lambda _: None))
    base = read(shapes.ensure(data, shapes.BASE, ROWS, log=lambda _: None))
    missing = np.flatnonzero(nulls["label"].is_null().to_numpy(zero_copy_only=False))
    np.testing.assert_array_equal(missing, np.arange(99_999, ROWS, 100_000))
    kept = np.delete(nulls["label"].to_numpy(zero_copy_only=False), missing)
    np.testing.assert_array_equal(kept, np.delete(base["label"].to_numpy(), missing))


@pytest.mark.parametrize("name", ["label_float64", "label_bool", "label_nulls"])
def test_the_floor_counts_what_numpy_counts(data: Path, name: str) -> None:
    dataset = shapes.ensure(data, shapes.BY_NAME[name], ROWS, log=lambda _: None)
    metrics = shapes.floor(Context(binary=dataset, multilabel=None, buckets=1 << 16))
    table = read(dataset)
    table = table.filter(table["label"].is_valid())
    y = table["label"].to_numpy(zero_copy_only=False).astype(np.int64)
    s = table["score"].to_numpy()
    counts = np.bincount(bucket_of(s, 1 << 16) * 2 + y, minlength=2 << 16)
    auc, bound = roc_auc(counts[1::2], counts[0::2])
    assert metrics["rows"] == table.num_rows == ROWS - (3 if name == "label_nulls" else 0)
    assert metrics["roc_auc[score]"] == auc.value
    assert abs(auc.value - roc_auc_score(y, s)) <= bound.value + 1e-12


def test_marginal_is_the_cpu_of_the_rows_less_a_small_job() -> None:
    def runs(*cpu: float) -> list[Sample]:
        return [Sample(1.0, c, 0.0, None, True, c + 1) for c in cpu]

    measured = shapes.Measured(
        shapes.BASE, 10, runs(2.0, 3.0, 2.5), runs(9.0, 7.0, 8.0), runs(1.0, 2.0, 3.0),
        0.9, 0.9, 1,
    )  # fmt: skip
    row = measured.row()
    assert row["marginal_cpu_s"] == 8.0 - 2.0
    assert row["vs_floor"] == pytest.approx(2.5 / 6.0)
    assert row["machine_cpu_s"] == [3.5, 9.0, 3.0]
