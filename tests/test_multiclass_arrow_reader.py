"""Multiclass on the arrow reader: the count table Spark's reader gives, cell for cell, and
metrics equal to scikit-learn's on the same rows, for the three inputs (a prediction
column, arrays of scores with argmax and top-k, pixel arrays).

The adversarial rows hold every invalid reason (nulls in labels, predictions and
inside arrays; classes outside [0, K); NaN and ±inf scores; arrays of another length;
ragged pixel arrays; bad weights), ties in scores (argmax and top-k ranks: −0.0 against
0.0, equal maxima, the true class tied with others), empty arrays and huge values.
The Spark SQL reader (:mod:`tally.spark.readers.sql.multiclass`) states these rules in
SQL; each test holds the numpy kernels (:mod:`tally.kernels.multiclass`) to it.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, jaccard_score, top_k_accuracy_score

from tally.config import InputConfig
from tally.counts_multi import MulticlassCounts
from tally.kernels import multiclass as kernels
from tally.kernels.cells import top_k_cell
from tally.metrics.multiclass import multiclass_metrics
from tally.plan import ALL_ROWS, CountPlan
from tally.spark.count import arrow_reader, choose_reader, count_tables
from tally.spark.readers import ArrowReader
from tally.tasks import decode_groups
from test_arrow_reader import write_files

K = 5
CLASSES = tuple(f"c{i}" for i in range(K))
NAN, INF = float("nan"), float("inf")
BIG = 2**62

#: Weights of the adversarial rows, cycled: each reason of a weight, and fine ones.
WEIGHTS = [1.0, None, NAN, -1.0, INF, -INF, 0.0, -0.0, 2.5, 1e-300]


def _weights(n: int, rng: np.random.Generator) -> pa.Array:
    w = rng.integers(1, 4, n).astype(np.float64).tolist()
    for j in range(0, n, 97):
        w[j] = WEIGHTS[(j // 97) % len(WEIGHTS)]
    return pa.array(w, pa.float64(), from_pandas=False)


def _slices(n: int, rng: np.random.Generator) -> pa.Array:
    """Six values with null, of very different sizes: rare ones merge into __other__."""
    values = rng.choice(["a", "b", "c", "d", "e"], n, p=[0.4, 0.3, 0.2, 0.08, 0.02]).tolist()
    for j in range(5, n, 53):
        values[j] = None
    return pa.array(values, pa.string())


def prediction_table(n: int, seed: int) -> pa.Table:
    """int16 labels and int64 predictions, one in ten rows adversarial."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n).tolist()
    p = [v if rng.random() < 0.6 else int(rng.integers(0, K)) for v in y]
    odd_labels = [None, -1, K, K + 3, 2**15 - 1, -(2**15), 0, K - 1]
    odd_predictions = [None, -1, K, BIG, -BIG, 0, K - 1, 2**40]
    for j in range(3, n, 10):
        y[j] = odd_labels[(j // 10) % len(odd_labels)]
        p[j] = odd_predictions[(j // 70) % len(odd_predictions)]
    return pa.table(
        {
            "label": pa.array(y, pa.int16()),
            "pred": pa.array(p, pa.int64()),
            "pred2": pa.array(rng.integers(-1, K + 1, n), pa.int8()),
            "w": _weights(n, rng),
            "country": _slices(n, rng),
        }
    )


def _tied_scores(rng: np.random.Generator, y: int) -> list:
    """Score arrays whose argmax or top-k rank turns on the tie rule."""
    top = float(rng.integers(1, 4))
    cases = [
        [top] * K,  # every class tied
        [0.0, -0.0, -1.0, -2.0, -3.0],  # 0.0 and -0.0 tie at the top
        [-0.0, 0.0, -1.0, -2.0, -3.0],
        [top if c in (y, (y + 2) % K) else 0.0 for c in range(K)],  # true class tied
        [0.1, 0.2, 0.2, 0.1, 0.2],
        [1e308, 1e308, -1e308, 5e-324, -5e-324],
    ]
    return cases[int(rng.integers(0, len(cases)))]


def scores_table(n: int, seed: int) -> pa.Table:
    """int32 labels; float32 score arrays and int32 score arrays (many ties)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n)
    logits = rng.normal(size=(n, K)) + 1.5 * np.eye(K)[y]
    scores = np.round(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), 2).tolist()
    rounded = rng.integers(0, 4, (n, K)).tolist()  # ints: ties everywhere
    labels: list = y.tolist()
    odd_labels = [None, -1, K, 2**31 - 1]
    odd_arrays = [
        None,
        [],
        [0.5] * (K - 1),
        [0.5] * (K + 1),
        [0.1, None, 0.3, 0.2, 0.4],
        [0.1, NAN, 0.3, 0.2, 0.4],
        [0.1, INF, 0.3, 0.2, 0.4],
        [0.1, -INF, 0.3, 0.2, 0.4],
    ]
    for j in range(1, n, 7):
        case = (j // 7) % 12
        if case < len(odd_arrays):
            scores[j] = odd_arrays[case]
            rounded[j] = None if odd_arrays[case] is None else [0] * min(K, len(odd_arrays[case]))
        else:
            scores[j] = _tied_scores(rng, int(y[j]))
        if (j // 7) % 5 == 0:
            labels[j] = odd_labels[(j // 35) % len(odd_labels)]
    return pa.table(
        {
            "label": pa.array(labels, pa.int32()),
            "probs": pa.array(scores, pa.list_(pa.float32())),
            "votes": pa.array(rounded, pa.list_(pa.int32())),
            "w": _weights(n, rng),
            "country": _slices(n, rng),
        }
    )


def pixel_table(rows: int, seed: int) -> pa.Table:
    """Images of 0–40 pixels: int8 label arrays, int32 prediction arrays; ragged,
    null and empty arrays, null and out-of-range pixels."""
    rng = np.random.default_rng(seed)
    labels, predictions = [], []
    for r in range(rows):
        size = int(rng.integers(0, 41))
        y = rng.integers(0, K, size)
        p = np.where(rng.random(size) < 0.7, y, rng.integers(0, K, size))
        ys, ps = y.tolist(), p.tolist()
        case = r % 13
        if case == 1:
            ys = None
        elif case == 2:
            ps = None
        elif case == 3:
            ps = [*ps, 0]  # ragged
        elif case == 4:
            ys, ps = [], []
        elif case == 5 and size:
            ys[0], ps[-1] = None, None
        elif case == 6 and size:
            ys[-1], ps[0] = K, -1
        elif case == 7 and size:
            ys[0], ps[0] = -128, 127
        elif case == 8 and size:
            ps[size // 2] = None
            ys[size // 2] = K + 1  # out of range before a null prediction
        labels.append(ys)
        predictions.append(ps)
    return pa.table(
        {
            "labels": pa.array(labels, pa.list_(pa.int8())),
            "predictions": pa.array(predictions, pa.list_(pa.int32())),
            "w": _weights(rows, rng),
            "country": _slices(rows, rng),
        }
    )


CASES = {
    "prediction": (prediction_table, "label", ("pred", "pred2"), 6_000),
    "scores": (scores_table, "label", ("probs", "votes"), 5_000),
    "pixels": (pixel_table, "labels", ("predictions",), 900),
}


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, tuple[pa.Table, str]]:
    """Each input's rows and their Parquet files (several files and row groups)."""
    out = {}
    for kind, (make, *_, n) in CASES.items():
        table = make(n, seed=len(kind))
        path = write_files(tmp_path_factory.mktemp(kind) / "in", table, 3, row_group_rows=400)
        out[kind] = (table, path)
    return out


def plan_of(kind: str, **options: object) -> CountPlan:
    _, label, scores, _ = CASES[kind]
    top_k = (1, 2, 3) if kind == "scores" else ()
    fields = {"label": label, "scores": scores, "buckets": 1, "thresholds": ()}
    fields |= {"task": "multiclass", "classes": CLASSES, "top_k": top_k}
    return CountPlan(**fields, multiclass_input=kind, **options)  # type: ignore[arg-type]


def cell_tables(spark, path: str, plan: CountPlan) -> tuple[dict, dict, dict, dict]:
    """The count table of each reader as {(score column, slice, cell): (n, w)}, and the
    merged-slice counts of each."""
    df = spark.read.parquet(path)
    direct = arrow_reader(spark, df, plan, InputConfig(path=path, reader="arrow"))
    assert isinstance(direct, ArrowReader)
    out = []
    for reader in (direct, None):
        tables = count_tables(df, plan, reader)
        try:
            frame = tables.collected if tables.collected is not None else tables.cells.toArrow()
            rows = frame.to_pylist()
            cells = {(r["score_column"], r["slice"], r["cell"]): (r["n"], r["w"]) for r in rows}
            out += [cells, tables.merged_counts()]
        finally:
            tables.release()
    return out[0], out[1], out[2], out[3]


def assert_same_cells(arrow: dict, spark: dict, weighted: bool) -> None:
    """Same keys, same ``n``; ``w`` of every cell that is read (all but invalid cells
    of weighted plans, whose weights may be null, NaN or infinite in Spark's sum)."""
    assert arrow.keys() == spark.keys()
    for key, (n, w) in spark.items():
        assert arrow[key][0] == n, key
        if not weighted or key[2] >= 0 or key[2] <= top_k_cell(1):
            assert arrow[key][1] == pytest.approx(w, rel=1e-12), key


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kind", list(CASES))
def test_cells_equal_sparks_on_adversarial_rows(spark, tables, kind, weighted):
    _, path = tables[kind]
    plan = plan_of(kind, weight="w" if weighted else None)
    arrow, _, spark_cells, _ = cell_tables(spark, path, plan)
    assert_same_cells(arrow, spark_cells, weighted)
    invalid = {key[2] for key in spark_cells if -10 < key[2] < 0}
    reasons = {
        "prediction": 4 + 2 * weighted,
        "scores": 5 + 2 * weighted,
        "pixels": 5 + 2 * weighted,
    }[kind]
    assert len(invalid) == reasons, sorted(invalid)  # the data reach every reason


@pytest.mark.parametrize("kind", list(CASES))
def test_sliced_cells_and_other_slice_equal_sparks(spark, tables, kind):
    """Prediction rows add one cell each: their slices are counted in the tasks; scores
    with top-k and pixel arrays go through Spark SQL's sum (their values rank by cells)."""
    _, path = tables[kind]
    plan = plan_of(kind, weight="w", slices=(("country",),), max_slices_per_spec=3)
    arrow, arrow_merged, spark_cells, spark_merged = cell_tables(spark, path, plan)
    assert_same_cells(arrow, spark_cells, weighted=True)
    assert arrow_merged == spark_merged == {"country=__other__": 3}


def test_tables_too_large_to_hold_go_through_spark_sql_alike(spark, tables, monkeypatch):
    monkeypatch.setattr(kernels, "TASK_MAX_CELLS", 1)
    _, path = tables["prediction"]
    plan = plan_of("prediction", weight="w")
    arrow, _, spark_cells, _ = cell_tables(spark, path, plan)
    assert_same_cells(arrow, spark_cells, weighted=True)


# --- metrics against scikit-learn -------------------------------------------------------------


def _valid_weight(w: np.ndarray) -> np.ndarray:
    return np.isfinite(w) & (w >= 0)


def _arrow_counts(spark, path: str, plan: CountPlan) -> dict:
    df = spark.read.parquet(path)
    reader = arrow_reader(spark, df, plan, InputConfig(path=path, reader="arrow"))
    tables = count_tables(df, plan, reader)
    try:
        return tables.groups(plan)
    finally:
        tables.release()


def assert_metrics_equal_sklearn(
    counts: MulticlassCounts, y: np.ndarray, p: np.ndarray, w: np.ndarray | None
) -> None:
    np.testing.assert_allclose(
        counts.confusion, confusion_matrix(y, p, labels=range(K), sample_weight=w), rtol=1e-12
    )
    metrics = {(m.metric, m.class_): m.value for m in multiclass_metrics(counts)}
    assert metrics[("accuracy", None)] == pytest.approx(
        accuracy_score(y, p, sample_weight=w), rel=1e-12
    )
    iou = jaccard_score(y, p, labels=range(K), average=None, sample_weight=w)
    for name, value in zip(CLASSES, iou, strict=True):
        assert metrics[("iou", name)] == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_prediction_metrics_equal_scikit_learn(spark, tables, weighted):
    table, path = tables["prediction"]
    plan = plan_of("prediction", weight="w" if weighted else None)
    counts = _arrow_counts(spark, path, plan)[("pred", ALL_ROWS)]
    frame = table.to_pandas()
    y = frame["label"].to_numpy(np.float64)
    p = frame["pred"].to_numpy(np.float64)
    w = frame["w"].to_numpy(np.float64)
    valid = (y >= 0) & (y < K) & (p >= 0) & (p < K)  # NaN (null) fails both
    if weighted:
        valid &= _valid_weight(w)
    assert counts.rows == valid.sum() and counts.invalid_rows == len(y) - valid.sum()
    assert_metrics_equal_sklearn(counts, y[valid], p[valid], w[valid] if weighted else None)


def test_scores_metrics_equal_scikit_learn(spark, tmp_path):
    """Continuous scores (no ties, so scikit-learn's tie rule does not matter) for top-k."""
    rng = np.random.default_rng(11)
    n = 4_000
    y = rng.integers(0, K, n)
    scores = rng.random((n, K)) + 0.4 * np.eye(K)[y]
    table = pa.table(
        {"label": pa.array(y, pa.int64()), "probs": pa.array(list(scores), pa.list_(pa.float64()))}
    )
    path = write_files(tmp_path / "scores", table, 2, row_group_rows=500)
    plan = CountPlan(
        label="label", scores=("probs",), buckets=1, thresholds=(), task="multiclass",
        classes=CLASSES, top_k=(1, 2, 3), multiclass_input="scores",
    )  # fmt: skip
    counts = _arrow_counts(spark, path, plan)[("probs", ALL_ROWS)]
    assert_metrics_equal_sklearn(counts, y, np.argmax(scores, axis=1), None)
    for top in (1, 2, 3):
        expected = top_k_accuracy_score(y, scores, k=top, labels=range(K), normalize=False)
        assert counts.top_k_hits[top] == expected


@pytest.mark.parametrize("weighted", [False, True])
def test_pixel_metrics_equal_scikit_learn(spark, tables, weighted):
    table, path = tables["pixels"]
    plan = plan_of("pixels", weight="w" if weighted else None)
    counts = _arrow_counts(spark, path, plan)[("predictions", ALL_ROWS)]
    ys, ps, ws = [], [], []
    for labels, predictions, w in zip(
        table["labels"].to_pylist(), table["predictions"].to_pylist(), table["w"].to_pylist(),
        strict=True,
    ):  # fmt: skip
        if labels is None or predictions is None or len(labels) != len(predictions):
            continue
        if weighted and (w is None or not np.isfinite(w) or w < 0):
            continue
        for a, b in zip(labels, predictions, strict=True):
            if a is not None and b is not None and 0 <= a < K and 0 <= b < K:
                ys.append(a)
                ps.append(b)
                ws.append(w)
    assert counts.rows == len(ys)
    assert_metrics_equal_sklearn(
        counts, np.array(ys), np.array(ps), np.array(ws) if weighted else None
    )


# --- the kernels' fast path and the reader's choice -------------------------------------------


@pytest.mark.parametrize("kind", ["prediction", "pixels"])
def test_batches_without_invalid_rows_count_the_floors_bincount(kind):
    """The shortcut of clean batches: one ``bincount(label·K + prediction)``."""
    rng = np.random.default_rng(5)
    y, p = rng.integers(0, K, 3_000), rng.integers(0, K, 3_000)
    if kind == "prediction":
        batch = pa.RecordBatch.from_pydict({"y": pa.array(y, pa.int8()), "s0": pa.array(p)})
    else:
        offsets = pa.array(np.arange(0, 3_001, 30, dtype=np.int32))
        batch = pa.RecordBatch.from_pydict(
            {
                "y": pa.ListArray.from_arrays(offsets, pa.array(y, pa.int16())),
                "s0": pa.ListArray.from_arrays(offsets, pa.array(p, pa.int32())),
            }
        )
    plan = CountPlan(
        label="y", scores=("s0",), buckets=1, thresholds=(), task="multiclass", classes=CLASSES,
        multiclass_input=kind,
    )  # fmt: skip
    totals = kernels.TaskTotals(1, kernels.Layout.of(plan))
    totals.add(batch)
    counts = decode_groups(totals.table(("s0",), ()), plan)[("s0", ALL_ROWS)]
    expected = np.bincount(y * K + p, minlength=K * K).reshape(K, K)
    np.testing.assert_array_equal(counts.confusion, expected)
    assert counts.rows == 3_000 and counts.invalid_rows == 0


def test_auto_picks_the_arrow_reader_for_multiclass_parquet(spark, tables, caplog):
    _, path = tables["pixels"]
    df = spark.read.parquet(path)
    with caplog.at_level(logging.INFO, logger="tally.spark.count"):
        reader = choose_reader(spark, df, plan_of("pixels"), InputConfig(path=path))
    assert isinstance(reader, ArrowReader)
    assert "with pyarrow" in caplog.text and "input.reader: auto" in caplog.text
    assert "does not count task multiclass" not in caplog.text
