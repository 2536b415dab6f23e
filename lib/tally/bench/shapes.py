"""The counting pass on binary data of several shapes: Tally's marginal CPU per row
against the floor's, shape by shape (``make bench-shapes``).

A **shape** is how the same rows are stored: the label's type, the score's, rows per
row group, rows per file, and whether the files hold columns the job does not read.
:data:`SHAPES` is a base shape (label int8, score float32, row groups of 2^20 rows:
pyarrow's default, files of 2^23 rows, no other column) and variants that each change
one of those from the base (not the cross product), plus two that change the rows
instead: half of them positive, and a null label every 100,000 rows (so that every
batch holds invalid rows and takes the per-row checks).

Every storage variant holds the same rows (label and score values), so the floor's and
Tally's ROC AUC agree across them up to the score's precision (float32 or float64). A
row ``i`` (in chunks of :data:`CHUNK_ROWS`, each with its own seed):

* ``label ~ Bernoulli(0.1)`` (``positive_rate``);
* ``score = sigmoid(−1.5 + 2.5·label + N(0, 1.2²))`` (ROC AUC ≈ 0.9);
* with ``extra``: ``other`` float32 (uniform) and ``country`` (50 strings, uniform),
  never read.

Per shape, in one run and one SparkSession (warmed up first): the floor (pyarrow +
numpy in this process, before Spark starts: ``label, score`` read in batches of 2^20
rows, :func:`~tally.kernels.buckets.bucket_of`, ``np.bincount``), then Tally binary
(as in ``make bench``: the reader ``auto`` picks, count tables collected and every
metric computed) on the shape's ``ROWS`` rows and on 1,000 rows of the same shape.
**Marginal CPU** is Tally's CPU at ``ROWS`` minus its CPU at 1,000 rows (the cost of
the rows, without a job's fixed cost); the ratio is the floor's CPU over that (its
rows per CPU-second against the floor's). CPU is that of every process of the run
(:mod:`tally.bench.probe`, exited workers included); the whole machine's busy CPU
(``/proc/stat``) is shown beside it.

Both the floor and Tally read a shape's data from the page cache where it fits (it was
just written; at 1B rows it takes 4.4 GiB with float32 scores, 7.8 GiB with float64),
and it is written back to disk (``os.sync``) before the floor starts, so that no
writeback runs during either.

Datasets are cached under ``<data>/shapes/<shape>/rows=<rows>`` with a manifest
written last, as in :mod:`tally.bench.data`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tally.bench import data as datasets
from tally.bench.methods import BATCH_ROWS, BUCKETS, Context, _auc_metrics, tally_binary
from tally.bench.probe import Probe, Sample, find_jvm
from tally.bench.run import Options, _load, jvm_gc, start_spark
from tally.kernels.buckets import bucket_of

log = logging.getLogger("tally.bench.shapes")

#: Bump when the generator changes: cached datasets of another version are regenerated.
GENERATOR_VERSION = 1
SEED = 20261202
#: Rows drawn per seed; row groups and files are multiples of it or cut from it.
CHUNK_ROWS = 1 << 17
#: The rows of the job whose CPU is taken off (a job's fixed cost).
SMALL_ROWS = 1_000
#: Rows of the warm-up jobs (base shape: two tasks on two cores), and how many: with 3,
#: the first shapes measured at 20M rows still ran slower than the later ones (JIT).
WARM_UP_ROWS = 2_000_000
WARM_UP_JOBS = 8
COUNTRIES = datasets.COUNTRIES

LABEL_TYPES = {
    "int8": pa.int8(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "bool": pa.bool_(),
    "float32": pa.float32(),
    "float64": pa.float64(),
}
SCORE_TYPES = {"float32": pa.float32(), "float64": pa.float64()}


@dataclass(frozen=True)
class Shape:
    """How the rows are stored."""

    name: str
    label: str = "int8"
    score: str = "float32"
    row_group_rows: int = 1 << 20
    file_rows: int = 1 << 23
    extra: bool = False
    positive_rate: float = 0.1
    #: a null label every this many rows (0: none)
    null_every: int = 0

    def __post_init__(self) -> None:
        if self.label not in LABEL_TYPES or self.score not in SCORE_TYPES:
            raise ValueError(f"shape {self.name}: unknown label or score type")

    def schema(self) -> pa.Schema:
        fields = [("label", LABEL_TYPES[self.label]), ("score", SCORE_TYPES[self.score])]
        if self.extra:
            fields += [("other", pa.float32()), ("country", pa.string())]
        return pa.schema(fields)

    def describe(self) -> str:
        extra = ", + other float32, country string (unread)" if self.extra else ""
        if self.positive_rate != BASE_RATE:
            extra += f", {self.positive_rate:.0%} positives"
        if self.null_every:
            extra += f", a null label every {self.null_every:,} rows"
        return (
            f"label {self.label}, score {self.score}, row groups {_rows(self.row_group_rows)}, "
            f"files {_rows(self.file_rows)}{extra}"
        )


def _rows(n: int) -> str:
    for unit, size in (("Mi", 1 << 20), ("ki", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return f"{n:,}"


BASE_RATE = 0.1
BASE = Shape("base")
#: The base and one-factor-at-a-time variants of it.
SHAPES: tuple[Shape, ...] = (
    BASE,
    replace(BASE, name="label_int32", label="int32"),
    replace(BASE, name="label_int64", label="int64"),
    replace(BASE, name="label_bool", label="bool"),
    replace(BASE, name="label_float64", label="float64"),
    replace(BASE, name="score_float64", score="float64"),
    replace(BASE, name="row_groups_128k", row_group_rows=1 << 17),
    replace(BASE, name="row_groups_8m", row_group_rows=1 << 23, file_rows=1 << 25),
    replace(BASE, name="extra_columns", extra=True),
    replace(BASE, name="many_small_files", file_rows=1 << 20),
    replace(BASE, name="few_large_files", file_rows=1 << 27),
    replace(BASE, name="positives_50", positive_rate=0.5),
    replace(BASE, name="label_nulls", null_every=100_000),
)
BY_NAME = {s.name: s for s in SHAPES}


# --- data ------------------------------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def chunk(
    index: int, seed: int = SEED, rate: float = BASE_RATE
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Chunk ``index`` (:data:`CHUNK_ROWS` rows): labels (0/1 int8), scores (float64),
    ``other`` (float32) and country codes (int8)."""
    rng = np.random.default_rng([seed, index])
    label = (rng.random(CHUNK_ROWS, np.float32) < rate).astype(np.int8)
    score = _sigmoid(-1.5 + 2.5 * label + 1.2 * rng.standard_normal(CHUNK_ROWS))
    other = rng.random(CHUNK_ROWS, np.float32)
    country = rng.integers(0, len(COUNTRIES), CHUNK_ROWS, dtype=np.int8)
    return label, score, other, country


def rows_table(shape: Shape, start: int, n: int, seed: int = SEED) -> pa.Table:
    """Rows ``start … start + n`` in ``shape``'s types."""
    first, end = start // CHUNK_ROWS, -(-(start + n) // CHUNK_ROWS)
    parts = [chunk(i, seed, shape.positive_rate) for i in range(first, end)]
    offset = start % CHUNK_ROWS
    label, score, other, country = (
        np.concatenate([p[k] for p in parts])[offset : offset + n] for k in range(4)
    )
    nulls = None
    if shape.null_every:
        nulls = np.arange(start, start + n) % shape.null_every == shape.null_every - 1
    columns = [
        pa.array(label.astype(bool) if shape.label == "bool" else label, mask=nulls).cast(
            LABEL_TYPES[shape.label]
        ),
        pa.array(score.astype(np.float32) if shape.score == "float32" else score),
    ]
    if shape.extra:
        names = pa.array(COUNTRIES, pa.string())
        columns += [pa.array(other), names.take(pa.array(country))]
    return pa.Table.from_arrays(columns, schema=shape.schema())


def dataset_path(root: Path, shape: Shape, rows: int) -> Path:
    return Path(root) / "shapes" / shape.name / f"rows={rows}"


#: Fields a manifest leaves out at these values (datasets written before they existed).
_LATER_FIELDS = {"positive_rate": BASE_RATE, "null_every": 0}


def _manifest(shape: Shape, rows: int, seed: int) -> dict[str, object]:
    fields = {k: v for k, v in asdict(shape).items() if _LATER_FIELDS.get(k, ...) != v}
    return {"shape": fields, "rows": rows, "seed": seed, "version": GENERATOR_VERSION}


def cached(root: Path, shape: Shape, rows: int, seed: int = SEED) -> datasets.Dataset | None:
    path = dataset_path(root, shape, rows)
    try:
        found = json.loads((path / datasets.MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if found != _manifest(shape, rows, seed):
        return None
    return datasets.Dataset("binary", rows, path, seed, GENERATOR_VERSION)


def _bytes_per_row(shape: Shape) -> float:
    return 1.0 + (8.0 if shape.score == "float64" else 4.0) + (4.5 if shape.extra else 0.0)


def ensure(
    root: Path, shape: Shape, rows: int, seed: int = SEED, log: Callable[[str], None] = print
) -> datasets.Dataset:
    """The cached dataset of ``shape``, written first when missing (one row group at a
    time; a temporary folder moved into place, the manifest last)."""
    found = cached(root, shape, rows, seed)
    if found is not None:
        return found
    path = dataset_path(root, shape, rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    need = int(rows * _bytes_per_row(shape) * 1.1)
    free = shutil.disk_usage(path.parent).free
    if need > free:
        raise OSError(
            f"{shape.name}: {rows:,} rows need about {need / 2**30:.1f} GiB in {path.parent}, "
            f"only {free / 2**30:.1f} GiB free"
        )
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)
    tmp.mkdir(parents=True)
    log(f"generating {rows:,} rows of shape {shape.name} in {path}")
    for index, start in enumerate(range(0, rows, shape.file_rows)):
        end = min(start + shape.file_rows, rows)
        with pq.ParquetWriter(tmp / f"part-{index:05d}.parquet", shape.schema()) as writer:
            for group in range(start, end, shape.row_group_rows):
                n = min(shape.row_group_rows, end - group)
                writer.write_table(rows_table(shape, group, n, seed), row_group_size=n)
    tmp.rename(path)
    (path / datasets.MANIFEST).write_text(json.dumps(_manifest(shape, rows, seed)) + "\n")
    return datasets.Dataset("binary", rows, path, seed, GENERATOR_VERSION)


# --- measuring -------------------------------------------------------------------------------


def floor(ctx: Context) -> dict[str, float | None]:
    """Read ``label, score`` with pyarrow, bucket, ``bincount``; ROC AUC from the histogram
    (float labels are cast to integers first: ``bincount`` takes integers; rows with a
    null label are left out)."""
    b = ctx.buckets
    counts = np.zeros(2 * b, np.int64)
    rows = 0
    for path in ctx.binary.files:
        for batch in pq.ParquetFile(path).iter_batches(BATCH_ROWS, columns=["label", "score"]):
            if batch.column(0).null_count:  # rows without a label are left out
                batch = batch.filter(batch.column(0).is_valid())
            label = batch.column(0).to_numpy(zero_copy_only=False)
            if label.dtype.kind == "f":
                label = label.astype(np.int8)
            cell = bucket_of(batch.column(1).to_numpy(), b) * 2 + label
            counts += np.bincount(cell, minlength=2 * b)
            rows += batch.num_rows
    return {"rows": float(rows), **_auc_metrics(counts[1::2], counts[0::2])}


@dataclass
class Measured:
    """One shape's runs: samples of the floor, of Tally at ``rows`` and at 1,000 rows."""

    shape: Shape
    rows: int
    floor: list[Sample]
    tally: list[Sample]
    small: list[Sample]
    auc_floor: float | None
    auc_tally: float | None
    files: int

    @staticmethod
    def _median(samples: list[Sample], field: str = "cpu_s") -> float:
        return statistics.median(getattr(s, field) for s in samples)

    def row(self) -> dict[str, object]:
        floor, tally, small = (self._median(x) for x in (self.floor, self.tally, self.small))
        marginal = tally - small
        machine = [
            self._median(x, "machine_cpu_s")
            for x in (self.floor, self.tally, self.small)
            if all(s.machine_cpu_s is not None for s in x)
        ]
        return {
            "shape": self.shape.name,
            "what": self.shape.describe(),
            "rows": self.rows,
            "files": self.files,
            "floor_cpu_s": floor,
            "tally_cpu_s": tally,
            "small_cpu_s": small,
            "marginal_cpu_s": marginal,
            "vs_floor": floor / marginal if marginal > 0 else None,
            "tally_wall_s": self._median(self.tally, "wall_s"),
            "floor_wall_s": self._median(self.floor, "wall_s"),
            "machine_cpu_s": machine if len(machine) == 3 else None,
            "runs": [len(self.floor), len(self.tally), len(self.small)],
            "auc_floor": self.auc_floor,
            "auc_tally": self.auc_tally,
        }


def _measure(
    probe: Probe, run: Callable[[], dict[str, float | None]], repeats: int
) -> tuple[list[Sample], dict[str, float | None]]:
    samples, out = [], {}
    for _ in range(repeats):
        with probe.measure() as m:
            out = run()
        assert m.sample is not None
        samples.append(m.sample)
    return samples, out


def run_shapes(
    shapes: Sequence[Shape],
    rows: int,
    data: Path,
    repeats: int,
    say: Callable[[str], None] = print,
    keep: bool = True,
) -> list[dict[str, object]]:
    """Measure each shape (see the module docstring); ``keep=False`` deletes each shape's
    ``rows``-row dataset once measured (the 1,000-row ones stay)."""
    big = {s.name: ensure(data, s, rows, log=say) for s in shapes} if keep else {}
    small = {s.name: ensure(data, s, SMALL_ROWS, log=say) for s in shapes}
    alone = Probe()  # the floors: this process only (the JVM idles meanwhile)
    spark = start_spark(Options())
    try:
        probe = Probe(find_jvm(spark), jvm_gc(spark))
        # JVM start, class loading, codegen; two tasks: each core's Python worker
        # imports numpy, pyarrow and Tally
        warm = _ctx(ensure(data, BASE, WARM_UP_ROWS, log=say), spark)
        for _ in range(WARM_UP_JOBS):
            tally_binary(warm)
        out = []
        for s in shapes:
            if s.name not in big:
                big[s.name] = ensure(data, s, rows, log=say)
            # a dataset just written is still being written back (GiBs of dirty pages at
            # 1B rows): done first, so that no writeback runs beside the floor or Tally
            os.sync()
            floor_samples, floor_metrics = _measure(
                alone, lambda s=s: floor(_ctx(big[s.name])), repeats
            )
            ctx, ctx_small = _ctx(big[s.name], spark), _ctx(small[s.name], spark)
            tally_binary(ctx_small)  # this shape's first job: untimed
            tally, fixed, metrics = [], [], {}
            for _ in range(repeats):  # interleaved: the load of the machine drifts
                more, metrics = _measure(probe, lambda c=ctx: tally_binary(c), 1)
                tally += more
                fixed += _measure(probe, lambda c=ctx_small: tally_binary(c), 1)[0]
            fixed += _measure(probe, lambda c=ctx_small: tally_binary(c), 3 - len(fixed))[0]
            measured = Measured(
                s,
                rows,
                floor_samples,
                tally,
                fixed,
                floor_metrics.get("roc_auc[score]"),
                metrics.get("roc_auc[score]"),
                len(big[s.name].files),
            )
            row = measured.row()
            out.append(row)
            say(
                f"{s.name:>18} tally: {_cpu(tally)}, 1,000 rows {_cpu(fixed)}: "
                f"{row['vs_floor']:.2f} of the floor"
            )
            if not keep:
                shutil.rmtree(big[s.name].path)
    finally:
        spark.stop()
    return out


def _ctx(dataset: datasets.Dataset, spark: object | None = None) -> Context:
    return Context(binary=dataset, multilabel=None, spark=spark, buckets=BUCKETS)  # type: ignore[arg-type]


def _cpu(samples: list[Sample]) -> str:
    return "/".join(f"{s.cpu_s:.2f}" for s in samples) + " CPU-s"


def markdown(rows: Sequence[dict[str, object]]) -> str:
    """The table of :func:`run_shapes` rows."""
    head = ("shape", "stored as", "rows", "files", "floor CPU-s", "Tally CPU-s", "1,000 rows",
            "marginal", "vs floor", "Tally wall s", "ROC AUC (floor = Tally)")  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * 8 + "---|"]
    for r in rows:
        same = "yes" if r["auc_floor"] == r["auc_tally"] else f"no ({r['auc_tally']})"
        cells = [r["shape"], r["what"], f"{r['rows']:,}", r["files"]]
        cells += [f"{r[k]:.2f}" for k in ("floor_cpu_s", "tally_cpu_s", "small_cpu_s")]
        cells += [f"{r['marginal_cpu_s']:.2f}", f"**{r['vs_floor']:.2f}**"]
        cells += [f"{r['tally_wall_s']:.1f}", f"{r['auc_floor']:.6f} {same}"]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``make bench-shapes``: see ``--help``."""
    p = argparse.ArgumentParser(
        prog="python -m tally.bench.shapes",
        description="Tally's marginal CPU per row against the floor's, on binary data of "
        "several shapes (label and score types, row groups, files, unread columns).",
    )
    p.add_argument("--rows", type=lambda x: int(float(x)), default=20_000_000)
    p.add_argument(
        "--shapes",
        default=",".join(BY_NAME),
        help=f"comma-separated subset of: {', '.join(BY_NAME)}",
    )
    p.add_argument("--data", type=Path, default=Options.data, help="dataset cache folder")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path, help="also write the rows here")
    p.add_argument(
        "--one-at-a-time",
        action="store_true",
        help="generate, measure and delete one shape's dataset at a time (disk)",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    unknown = [n for n in args.shapes.split(",") if n not in BY_NAME]
    if unknown:
        p.error(f"unknown shapes {unknown}; choose from {', '.join(BY_NAME)}")
    shapes = [BY_NAME[n] for n in args.shapes.split(",")]
    say = print
    load = _load()
    rows = run_shapes(shapes, args.rows, args.data, args.repeats, say, not args.one_at_a_time)
    say(f"\nload average before: {load}, after: {_load()}\n")
    say(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "load": [load, _load()]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
