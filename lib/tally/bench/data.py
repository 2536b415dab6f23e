"""Deterministic benchmark datasets, generated in bounded memory and cached on disk.

Two datasets, both Parquet (snappy), written chunk by chunk with numpy + pyarrow so
that a billion rows need no more memory than one chunk:

* **binary** (``ROWS`` rows): ``label`` int8, ``score`` float32, ``ctr_score``
  float32, ``country`` string (dictionary-encoded);
* **multi-label** (``min(ROWS, 20M)`` rows, see :data:`MULTILABEL_MAX_ROWS`):
  ``labels`` array<int8> and ``scores`` array<float32> of ``K = 20`` classes.
  Capped because a billion rows of 20 floats and 20 labels would be ~100 GB
  on disk; the multi-label rows of the benchmark are therefore measured on at
  most 20M rows whatever ``ROWS`` is.

How a row is drawn (each chunk has its own seed, ``[seed, dataset, chunk]``, so a
dataset is the same bytes on every run and the first chunks of a larger dataset
equal those of a smaller one):

* ``ctr_score = sigmoid(z)``, ``z ~ N(-4.45, 1.1²)``: click-through-rate-like,
  mean ≈ 0.02, median ≈ 0.012, 99% below ≈ 0.13: peaked near 0;
* ``label ~ Bernoulli(ctr_score)``: about 2% positives, and ``ctr_score`` is a
  calibrated probability of it (ROC AUC ≈ 0.78);
* ``score = sigmoid(-1 + 2·label + N(0, 1.2²))``: a broad score with a real
  signal (ROC AUC ≈ 0.88);
* ``country``: one of 50 country codes, Zipf-skewed (``p ∝ 1 / rank^1.2``: the
  first holds ~30% of the rows, the last ~0.3%);
* multi-label class ``k``: ``labels[k] ~ Bernoulli(π_k)`` with ``π_k`` from 1% to
  30% (log-spaced), ``scores[k] = sigmoid(logit(π_k) + a_k·(labels[k] − ½) +
  N(0, 1))`` with ``a_k`` from 1 to 3 (per-class ROC AUC ≈ 0.76 … 0.98).

A finished dataset holds a ``_bench.json`` manifest (written last, after the
folder was moved into place), so an interrupted generation is never reused.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

#: Bump when the generator changes: cached datasets of another version are regenerated.
GENERATOR_VERSION = 1
SEED = 20261122
#: Multi-label rows are capped here (a billion rows × 20 classes does not fit).
MULTILABEL_MAX_ROWS = 20_000_000
CLASSES = 20
MANIFEST = "_bench.json"

#: 50 country codes, most frequent first.
COUNTRIES = (
    "US", "IN", "BR", "DE", "GB", "FR", "JP", "ID", "MX", "IT",
    "ES", "CA", "KR", "TR", "PL", "NL", "AU", "SA", "AR", "TH",
    "VN", "PH", "EG", "NG", "PK", "BD", "CO", "ZA", "MY", "CL",
    "SE", "BE", "CH", "AT", "NO", "DK", "FI", "IE", "PT", "GR",
    "CZ", "RO", "HU", "IL", "AE", "NZ", "SG", "UA", "PE", "KE",
)  # fmt: skip
_COUNTRY_P = 1.0 / np.arange(1, len(COUNTRIES) + 1) ** 1.2
COUNTRY_WEIGHTS = _COUNTRY_P / _COUNTRY_P.sum()

BINARY_SCHEMA = pa.schema(
    [
        ("label", pa.int8()),
        ("score", pa.float32()),
        ("ctr_score", pa.float32()),
        ("country", pa.dictionary(pa.int8(), pa.string())),
    ]
)
MULTILABEL_SCHEMA = pa.schema([("labels", pa.list_(pa.int8())), ("scores", pa.list_(pa.float32()))])

#: Bytes on disk per row, measured on generated files (for the free-space check).
BINARY_BYTES_PER_ROW = 10.0
MULTILABEL_BYTES_PER_ROW = 88.0


@dataclass(frozen=True)
class Dataset:
    """A generated dataset on disk."""

    kind: str  # "binary" or "multilabel"
    rows: int
    path: Path
    seed: int = SEED
    version: int = GENERATOR_VERSION

    @property
    def files(self) -> list[Path]:
        return sorted(self.path.glob("*.parquet"))

    def manifest(self) -> dict[str, object]:
        """What identifies the data (not where it lies)."""
        out = asdict(self)
        del out["path"]
        return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _rng(seed: int, dataset: int, chunk: int) -> np.random.Generator:
    return np.random.default_rng([seed, dataset, chunk])


def binary_chunk(n: int, chunk_index: int, seed: int = SEED) -> pa.Table:
    """Chunk ``chunk_index`` of the binary dataset: ``n`` rows (see the module docstring)."""
    rng = _rng(seed, 0, chunk_index)
    ctr = _sigmoid(rng.normal(-4.45, 1.1, n)).astype(np.float32)
    label = (rng.random(n, np.float32) < ctr).astype(np.int8)
    score = _sigmoid(-1.0 + 2.0 * label + rng.normal(0.0, 1.2, n)).astype(np.float32)
    country = rng.choice(len(COUNTRIES), size=n, p=COUNTRY_WEIGHTS).astype(np.int8)
    return pa.table(
        [
            pa.array(label),
            pa.array(score),
            pa.array(ctr),
            pa.DictionaryArray.from_arrays(pa.array(country), pa.array(COUNTRIES)),
        ],
        schema=BINARY_SCHEMA,
    )


def multilabel_chunk(n: int, chunk_index: int, seed: int = SEED, k: int = CLASSES) -> pa.Table:
    """Chunk ``chunk_index`` of the multi-label dataset: ``n`` rows of ``k`` classes."""
    rng = _rng(seed, 1, chunk_index)
    prevalence = np.geomspace(0.01, 0.30, k)
    strength = np.linspace(1.0, 3.0, k)
    labels = (rng.random((n, k)) < prevalence).astype(np.int8)
    logit = np.log(prevalence / (1 - prevalence)) + strength * (labels - 0.5)
    scores = _sigmoid(logit + rng.standard_normal((n, k))).astype(np.float32)
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
    return pa.table(
        [
            pa.ListArray.from_arrays(offsets, pa.array(labels.reshape(-1))),
            pa.ListArray.from_arrays(offsets, pa.array(scores.reshape(-1))),
        ],
        schema=MULTILABEL_SCHEMA,
    )


@dataclass(frozen=True)
class Layout:
    """How a dataset is cut: rows per chunk (one Parquet row group) and per file."""

    chunk_rows: int
    file_rows: int


LAYOUTS = {
    "binary": Layout(chunk_rows=1_000_000, file_rows=8_000_000),
    "multilabel": Layout(chunk_rows=250_000, file_rows=2_000_000),
}
CHUNKS: dict[str, Callable[[int, int, int], pa.Table]] = {
    "binary": binary_chunk,
    "multilabel": multilabel_chunk,
}
SCHEMAS = {"binary": BINARY_SCHEMA, "multilabel": MULTILABEL_SCHEMA}
BYTES_PER_ROW = {"binary": BINARY_BYTES_PER_ROW, "multilabel": MULTILABEL_BYTES_PER_ROW}


def _chunks(rows: int, chunk_rows: int) -> Iterator[tuple[int, int]]:
    for index, start in enumerate(range(0, rows, chunk_rows)):
        yield index, min(chunk_rows, rows - start)


def dataset_path(root: Path, kind: str, rows: int) -> Path:
    """Where the ``kind`` dataset of ``rows`` rows lives: ``<root>/rows=<rows>/<kind>``."""
    return Path(root) / f"rows={rows}" / kind


def cached(root: Path, kind: str, rows: int, seed: int = SEED) -> Dataset | None:
    """The finished dataset of that kind and size, or None if absent, partial or stale."""
    dataset = Dataset(kind, rows, dataset_path(root, kind, rows), seed)
    try:
        manifest = json.loads((dataset.path / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return dataset if manifest == dataset.manifest() else None


def ensure(
    root: Path,
    kind: str,
    rows: int,
    seed: int = SEED,
    log: Callable[[str], None] = print,
) -> Dataset:
    """The cached dataset, generated first when missing (chunked; bounded memory).

    Written into a temporary folder next to the target and moved into place when
    complete; the manifest comes last. Fails before writing when the disk lacks
    room for it.
    """
    if kind not in CHUNKS:
        raise ValueError(f"unknown dataset kind {kind!r}; expected one of {sorted(CHUNKS)}")
    if rows <= 0:
        raise ValueError(f"rows must be positive, got {rows}")
    found = cached(root, kind, rows, seed)
    if found is not None:
        return found
    dataset = Dataset(kind, rows, dataset_path(root, kind, rows), seed)
    dataset.path.parent.mkdir(parents=True, exist_ok=True)
    need = int(rows * BYTES_PER_ROW[kind] * 1.1)
    free = shutil.disk_usage(dataset.path.parent).free
    if need > free:
        raise OSError(
            f"generating {rows:,} {kind} rows needs about {need / 2**30:.1f} GiB in "
            f"{dataset.path.parent}, only {free / 2**30:.1f} GiB free"
        )
    tmp = dataset.path.with_name(f".{kind}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(dataset.path, ignore_errors=True)
    tmp.mkdir(parents=True)
    layout, make = LAYOUTS[kind], CHUNKS[kind]
    per_file = layout.file_rows // layout.chunk_rows
    log(f"generating {rows:,} {kind} rows in {dataset.path} (chunks of {layout.chunk_rows:,})")
    writer: pq.ParquetWriter | None = None
    try:
        for index, n in _chunks(rows, layout.chunk_rows):
            if index % per_file == 0:
                if writer is not None:
                    writer.close()
                name = tmp / f"part-{index // per_file:05d}.parquet"
                writer = pq.ParquetWriter(name, SCHEMAS[kind], compression="snappy")
            assert writer is not None
            writer.write_table(make(n, index, seed), row_group_size=layout.chunk_rows)
            if (index + 1) % 100 == 0:
                log(f"  {min((index + 1) * layout.chunk_rows, rows):,} rows written")
    finally:
        if writer is not None:
            writer.close()
    tmp.rename(dataset.path)
    (dataset.path / MANIFEST).write_text(json.dumps(dataset.manifest(), indent=1) + "\n")
    return dataset
