"""The deterministic demo datasets that ``make run`` evaluates.

Binary (``conf/demo.yaml``): rows have a 0/1 ``label`` (30% positive), a float32
``score`` with a real signal (``sigmoid(-1 + 2·label + N(0, 1.2²))``, ROC AUC about
0.88), a ``country`` column for slicing, and a few rows with a null score so that
``invalid_rows`` shows up.

Multi-label (``conf/demo_multilabel.yaml``): ``tags``, an array of K = 5 0/1 labels
(class ``k`` present with probability 0.1 … 0.5), and ``tag_scores``, K float32
scores ``sigmoid(-1.5 + 3·label + N(0, 1.5²))``.

Multiclass (``conf/demo_multiclass.yaml``): ``category``, one of K = 4 classes
(frequencies 40/30/20/10%), and ``probs``, a softmax over K logits where the true
class gets +2.

The same seed always gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

COUNTRIES = np.array(["US", "DE", "FR", "IN", "BR", "JP"])
NULL_SCORE_EVERY = 20_000  # one row in 20,000 has a null score


def demo_table(rows: int, seed: int = 7) -> pa.Table:
    """``rows`` demo rows as an Arrow table (see the module docstring)."""
    rng = np.random.default_rng(seed)
    label = (rng.random(rows) < 0.3).astype(np.int8)
    logit = -1.0 + 2.0 * label + rng.normal(0.0, 1.2, rows)
    score = (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    null_score = np.zeros(rows, bool)
    null_score[::NULL_SCORE_EVERY] = True
    country = COUNTRIES[rng.integers(0, len(COUNTRIES), rows)]
    return pa.table(
        {
            "label": pa.array(label),
            "score": pa.array(score, mask=null_score),
            "country": pa.array(country),
        }
    )


def multilabel_table(rows: int, seed: int = 7, classes: int = 5) -> pa.Table:
    """``rows`` multi-label demo rows (see the module docstring)."""
    rng = np.random.default_rng(seed)
    rate = np.linspace(0.1, 0.5, classes)
    labels = (rng.random((rows, classes)) < rate).astype(np.int8)
    logit = -1.5 + 3.0 * labels + rng.normal(0.0, 1.5, (rows, classes))
    scores = (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    return pa.table({"tags": _fixed_lists(labels), "tag_scores": _fixed_lists(scores)})


def multiclass_table(rows: int, seed: int = 7) -> pa.Table:
    """``rows`` multiclass demo rows (see the module docstring)."""
    rng = np.random.default_rng(seed)
    frequencies = np.array([0.4, 0.3, 0.2, 0.1])
    category = rng.choice(len(frequencies), size=rows, p=frequencies).astype(np.int32)
    logits = rng.normal(0.0, 1.3, (rows, len(frequencies)))
    logits[np.arange(rows), category] += 2.0
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    return pa.table({"category": pa.array(category), "probs": _fixed_lists(probs)})


def _fixed_lists(values: np.ndarray) -> pa.Array:
    """A (rows, K) array as an Arrow list column of K values per row."""
    rows, k = values.shape
    offsets = pa.array(np.arange(0, rows * k + 1, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1)))


#: ``tally demo-data --kind``: the table of each demo dataset
KINDS = {"binary": demo_table, "multilabel": multilabel_table, "multiclass": multiclass_table}


def write_demo_dataset(
    path: str | Path, rows: int = 2_000_000, seed: int = 7, files: int = 4, kind: str = "binary"
) -> Path:
    """Write the ``kind`` demo rows as ``files`` Parquet files under ``path`` (replacing it)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*.parquet"):
        old.unlink()
    table = KINDS[kind](rows, seed)
    per_file = -(-rows // files)
    for i in range(files):
        part = table.slice(i * per_file, per_file)
        pq.write_table(part, path / f"part-{i:03d}.parquet")
    return path
