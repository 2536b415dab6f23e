"""A float64 copy of the benchmark's ``ctr_score``, for exact AUC on 8-byte scores.

The binary dataset stores ``ctr_score`` as float32. :func:`ctr64` derives a copy of
its ``label`` and ``ctr_score`` with the scores widened to float64 (the same values,
files and row groups), cached next to it (``<root>/rows=N/ctr64``), so that
``metrics.auc: exact`` is measured on float64 scores as well as float32 ones
(methods ``tally_ctr64`` and ``tally_ctr64_exact`` in :mod:`tally.bench.methods`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tally.bench.data import MANIFEST, Dataset

#: The score column copied.
COLUMN = "ctr_score"
SCHEMA = pa.schema([("label", pa.int8()), (COLUMN, pa.float64())])


def ctr64(binary: Dataset, log: Callable[[str], None] = print) -> Dataset:
    """The float64 copy of ``binary``'s ``label, ctr_score``, written first when missing
    (into a temporary folder moved into place when complete, the manifest last)."""
    dataset = dataclasses.replace(binary, kind="ctr64", path=binary.path.parent / "ctr64")
    try:
        if json.loads((dataset.path / MANIFEST).read_text()) == dataset.manifest():
            return dataset
    except (OSError, ValueError):
        pass
    tmp = dataset.path.with_name(".ctr64.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(dataset.path, ignore_errors=True)
    tmp.mkdir(parents=True)
    log(f"writing {binary.rows:,} rows of {COLUMN} as float64 in {dataset.path}")
    for path in binary.files:
        source = pq.ParquetFile(path)
        with pq.ParquetWriter(tmp / path.name, SCHEMA, compression="snappy") as writer:
            for group in range(source.num_row_groups):
                table = source.read_row_group(group, columns=["label", COLUMN])
                writer.write_table(table.cast(SCHEMA), row_group_size=table.num_rows)
    tmp.rename(dataset.path)
    (dataset.path / MANIFEST).write_text(json.dumps(dataset.manifest(), indent=1) + "\n")
    return dataset


def with_ctr64(ctx: Any) -> Any:
    """A benchmark context (:class:`tally.bench.methods.Context`) whose binary dataset
    is the float64 copy (:func:`ctr64`)."""
    return dataclasses.replace(ctx, binary=ctr64(ctx.binary))
