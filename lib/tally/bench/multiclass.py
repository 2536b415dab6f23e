"""The multiclass benchmark (``make bench-multiclass``): Tally against its floor on one run.

Datasets (Parquet, snappy, generated chunk by chunk and cached under ``data/bench``
like the others, :mod:`tally.bench.data`):

* **multiclass** (``ROWS`` rows): ``label`` and ``prediction``, int32 classes of
  ``K = 10``; ``label`` skewed (``p ∝ 1 / rank``), ``prediction`` equal to it with
  probability 0.7, else uniform. Row groups of 1M rows, files of 8M.
* **pixels** (``--pixels``, ``ROWS`` pixels): images of 256 pixels a row,
  ``labels`` and ``predictions`` array<int8>, drawn as above.

Methods, each from the Parquet path to its metric values in driver memory:

* **floor, multiclass**: pyarrow ``iter_batches`` of the two columns (2^20 rows a
  batch) and ``np.bincount(label·K + prediction)`` in one process; accuracy from the
  confusion matrix. No Spark, no validity checks. For pixels, the flattened arrays.
* **Tally multiclass**: ``spark.read.parquet`` + ``count_tables`` with the reader
  ``tally evaluate`` picks (``input.reader: auto``: the arrow reader) + decode +
  every multiclass metric: ``tally evaluate`` minus writing the tables.
* **Tally multiclass, input.reader: spark**: the same with Spark's reader and the
  Spark SQL cells (:mod:`tally.spark.readers.sql.multiclass`).

CPU and memory as the main benchmark measures them (:mod:`tally.bench.probe`: this
process, the JVM and every process below either, exited Python workers included), in
one warmed-up SparkSession with the main benchmark's settings; ``vs floor`` is rows
per CPU-second relative to the floor's, in the same run. The report is printed
(Markdown) and written as JSON where ``--out`` says.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shlex
import shutil
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import SparkSession

from tally.bench.data import SEED
from tally.bench.probe import Probe, Sample, find_jvm
from tally.bench.run import Options, jvm_gc, start_spark
from tally.config import InputConfig
from tally.metrics.multiclass import multiclass_metrics
from tally.plan import ALL_ROWS, CountPlan
from tally.spark.count import choose_reader, count_tables

log = logging.getLogger("tally.bench.multiclass")

K = 10
CLASSES = tuple(f"class_{i}" for i in range(K))
GENERATOR_VERSION = 1
MANIFEST = "_bench.json"
CHUNK_ROWS = 1 << 20
FILE_CHUNKS = 8
PIXELS_PER_ROW = 256
BATCH_ROWS = 1 << 20
#: Bytes on disk per row (pixel), measured on generated files, for the free-space check.
BYTES_PER_ROW = 1.5

_LABEL_P = 1.0 / np.arange(1, K + 1)
LABEL_P = _LABEL_P / _LABEL_P.sum()


# --- data ------------------------------------------------------------------------------------


def classes_chunk(n: int, index: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (label, prediction) pairs of chunk ``index`` (see the module docstring)."""
    rng = np.random.default_rng([seed, 3, index])
    label = rng.choice(K, size=n, p=LABEL_P).astype(np.int32)
    right = rng.random(n) < 0.7
    prediction = np.where(right, label, rng.integers(0, K, n, dtype=np.int32)).astype(np.int32)
    return label, prediction


def multiclass_chunk(n: int, index: int, seed: int = SEED) -> pa.Table:
    label, prediction = classes_chunk(n, index, seed)
    return pa.table({"label": label, "prediction": prediction})


def pixels_chunk(n: int, index: int, seed: int = SEED) -> pa.Table:
    """``n`` pixels (a multiple of :data:`PIXELS_PER_ROW`) as rows of int8 arrays."""
    label, prediction = classes_chunk(n, index, seed)
    offsets = pa.array(np.arange(0, n + 1, PIXELS_PER_ROW, dtype=np.int32))
    return pa.table(
        {
            "labels": pa.ListArray.from_arrays(offsets, pa.array(label.astype(np.int8))),
            "predictions": pa.ListArray.from_arrays(offsets, pa.array(prediction.astype(np.int8))),
        }
    )


CHUNKS: dict[str, Callable[[int, int, int], pa.Table]] = {
    "multiclass": multiclass_chunk,
    "pixels": pixels_chunk,
}


def ensure(root: Path, kind: str, rows: int, seed: int = SEED) -> Path:
    """The folder of the ``kind`` dataset of ``rows`` rows (pixels), generated when missing
    or stale; the manifest is written last, so a partial dataset is never reused."""
    path = Path(root) / f"rows={rows}" / kind
    manifest = {"kind": kind, "rows": rows, "seed": seed, "version": GENERATOR_VERSION}
    try:
        if json.loads((path / MANIFEST).read_text()) == manifest:
            return path
    except (OSError, ValueError):
        pass
    if kind == "pixels" and rows % PIXELS_PER_ROW:
        raise ValueError(f"pixels must be a multiple of {PIXELS_PER_ROW}, got {rows}")
    path.parent.mkdir(parents=True, exist_ok=True)
    need = int(rows * BYTES_PER_ROW * 1.2)
    if need > shutil.disk_usage(path.parent).free:
        raise OSError(f"generating {rows:,} {kind} rows needs about {need / 2**30:.1f} GiB")
    tmp = path.with_name(f".{kind}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)
    tmp.mkdir(parents=True)
    log.info("generating %s %s rows in %s", f"{rows:,}", kind, path)
    writer: pq.ParquetWriter | None = None
    try:
        for index, start in enumerate(range(0, rows, CHUNK_ROWS)):
            table = CHUNKS[kind](min(CHUNK_ROWS, rows - start), index, seed)
            if index % FILE_CHUNKS == 0:
                if writer is not None:
                    writer.close()
                name = tmp / f"part-{index // FILE_CHUNKS:05d}.parquet"
                writer = pq.ParquetWriter(name, table.schema, compression="snappy")
            assert writer is not None
            writer.write_table(table, row_group_size=CHUNK_ROWS)
    finally:
        if writer is not None:
            writer.close()
    tmp.rename(path)
    (path / MANIFEST).write_text(json.dumps(manifest) + "\n")
    return path


# --- methods ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Data:
    kind: str  # multiclass | pixels
    path: Path
    rows: int  # rows (pixels) counted

    @property
    def columns(self) -> tuple[str, str]:
        return ("label", "prediction") if self.kind == "multiclass" else ("labels", "predictions")


def floor(data: Data, spark: SparkSession | None = None) -> dict[str, float]:
    """pyarrow + ``np.bincount(label·K + prediction)``, one process; accuracy."""
    del spark
    confusion = np.zeros(K * K, np.int64)
    step = BATCH_ROWS if data.kind == "multiclass" else BATCH_ROWS // PIXELS_PER_ROW
    for path in sorted(data.path.glob("*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(step, columns=list(data.columns)):
            y, p = batch.column(0), batch.column(1)
            if data.kind == "pixels":
                y, p = y.flatten(), p.flatten()
            confusion += np.bincount(
                y.to_numpy().astype(np.int64) * K + p.to_numpy(), minlength=K * K
            )
    total = int(confusion.sum())
    return {"rows": float(total), "accuracy": float(np.trace(confusion.reshape(K, K)) / total)}


def _tally(data: Data, spark: SparkSession | None, reader: str) -> dict[str, float]:
    assert spark is not None
    label, output = data.columns
    plan = CountPlan(
        label=label,
        scores=(output,),
        buckets=1,
        thresholds=(),
        task="multiclass",
        classes=CLASSES,
        multiclass_input="prediction" if data.kind == "multiclass" else "pixels",
    )
    df = spark.read.parquet(str(data.path))
    chosen = choose_reader(spark, df, plan, InputConfig(path=str(data.path), reader=reader))
    tables = count_tables(df, plan, chosen)
    try:
        counts = tables.groups(plan)[(output, ALL_ROWS)]
    finally:
        tables.release()
    values = {m.metric: m.value for m in multiclass_metrics(counts) if m.class_ is None}
    return {"rows": float(counts.rows), "accuracy": float(values["accuracy"] or 0.0)}


def tally_arrow(data: Data, spark: SparkSession | None = None) -> dict[str, float]:
    return _tally(data, spark, "auto")


def tally_spark_reader(data: Data, spark: SparkSession | None = None) -> dict[str, float]:
    return _tally(data, spark, "spark")


Run = Callable[[Data, "SparkSession | None"], dict[str, float]]
#: (key, label, function, runs in Spark)
METHODS: tuple[tuple[str, str, Run, bool], ...] = (
    ("floor", "floor, multiclass: pyarrow + numpy bincount", floor, False),
    ("tally", "Tally multiclass (arrow reader)", tally_arrow, True),
    ("tally_spark_reader", "Tally multiclass, input.reader: spark", tally_spark_reader, True),
)


@dataclass
class Row:
    key: str
    label: str
    data: Data
    samples: list[Sample] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def cpu_s(self) -> float:
        return statistics.median(s.cpu_s for s in self.samples)

    @property
    def wall_s(self) -> float:
        return statistics.median(s.wall_s for s in self.samples)


def measure(row: Row, run: Run, probe: Probe, spark: SparkSession | None, repeats: int) -> Row:
    for i in range(repeats):
        with probe.measure() as m:
            row.metrics = run(row.data, spark)
        assert m.sample is not None
        row.samples.append(m.sample)
        log.info(
            "%-45s run %d: %7.2f s wall, %7.2f s CPU",
            row.label,
            i + 1,
            m.sample.wall_s,
            m.sample.cpu_s,
        )
    return row


# --- report ----------------------------------------------------------------------------------


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def report(rows: Sequence[Row], command: str, before: str, after: str) -> str:
    """The Markdown table of one run (ratios against the floor of the same dataset)."""
    floors = {r.data.kind: r for r in rows if r.key == "floor"}
    lines = [
        f"`{command}`, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC. "
        f"Load average (1/5/15 min) before: {before}, after: {after}.",
        "",
        "| method | data | rows | wall s | CPU s | rows / CPU-s | vs floor | accuracy |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        speed = r.data.rows / r.cpu_s
        base = floors.get(r.data.kind)
        ratio = speed / (base.data.rows / base.cpu_s) if base else float("nan")
        versus = (
            "1.00" if r.key == "floor" else (f"1/{1 / ratio:.2f}" if ratio < 1 else f"{ratio:.2f}")
        )
        accuracy = r.metrics.get("accuracy", 0.0)
        lines.append(
            f"| {r.label} | {r.data.kind} | {r.data.rows:,} | {r.wall_s:.3g} (n={len(r.samples)}) "
            f"| {r.cpu_s:.3g} | {speed / 1e6:.2f} M | {versus} | {accuracy:.6f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``make bench-multiclass``: see ``--help``."""
    p = argparse.ArgumentParser(
        prog="python -m tally.bench.multiclass",
        description="Multiclass: the pyarrow + numpy floor against Tally with each reader.",
    )
    p.add_argument("--rows", type=lambda x: int(float(x)), default=20_000_000)
    p.add_argument("--pixels", type=lambda x: int(float(x)), default=0,
                   help="also a pixel-array dataset of this many pixels (0: none)")  # fmt: skip
    p.add_argument("--data", type=Path, default=Path("data/bench"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--spark-reader-repeats", type=int, default=None,
                   help="runs of input.reader: spark (default --repeats)")  # fmt: skip
    p.add_argument("--methods", default=",".join(k for k, *_ in METHODS))
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    command = shlex.join(["python -m tally.bench.multiclass", *(argv or sys.argv[1:])])
    wanted = args.methods.split(",")
    datasets = [Data("multiclass", ensure(args.data, "multiclass", args.rows), args.rows)]
    if args.pixels:
        datasets.append(Data("pixels", ensure(args.data, "pixels", args.pixels), args.pixels))
    before = _load()
    rows: list[Row] = []
    for data in datasets:  # the floors first, before Spark starts
        if "floor" in wanted:
            rows.append(
                measure(Row("floor", METHODS[0][1], data), floor, Probe(), None, args.repeats)
            )
    spark = start_spark(Options())
    try:
        probe = Probe(find_jvm(spark), jvm_gc(spark))
        spark.range(1_000_000).selectExpr("sum(id)").collect()
        for data in datasets:
            # warm-up on one file: the Python workers import numpy, pyarrow and Tally
            first = Data(data.kind, sorted(data.path.glob("*.parquet"))[0], data.rows)
            tally_arrow(first, spark)
            tally_spark_reader(first, spark)
            for key, label, run, _ in METHODS[1:]:
                if key not in wanted:
                    continue
                repeats = args.repeats
                if key == "tally_spark_reader" and args.spark_reader_repeats is not None:
                    repeats = args.spark_reader_repeats
                rows.append(measure(Row(key, label, data), run, probe, spark, repeats))
    finally:
        spark.stop()
    text = report(rows, command, before, _load())
    print(text)
    if args.out:
        results = [
            {
                "key": r.key,
                "data": r.data.kind,
                "rows": r.data.rows,
                "wall_s": [s.wall_s for s in r.samples],
                "cpu_s": [s.cpu_s for s in r.samples],
                "metrics": r.metrics,
            }
            for r in rows
        ]
        args.out.write_text(
            json.dumps({"command": command, "results": results, "table": text}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
