"""The deterministic demo dataset that ``make run`` evaluates.

Rows have a 0/1 ``label`` (30% positive), a float32 ``score`` with a real signal
(``sigmoid(-1 + 2·label + N(0, 1.2²))``, ROC AUC about 0.88), a ``country`` column
for slicing, and a few rows with a null score so that ``invalid_rows`` shows up.
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


def write_demo_dataset(
    path: str | Path, rows: int = 2_000_000, seed: int = 7, files: int = 4
) -> Path:
    """Write the demo rows as ``files`` Parquet files under ``path`` (replacing it)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*.parquet"):
        old.unlink()
    table = demo_table(rows, seed)
    per_file = -(-rows // files)
    for i in range(files):
        part = table.slice(i * per_file, per_file)
        pq.write_table(part, path / f"part-{i:03d}.parquet")
    return path
