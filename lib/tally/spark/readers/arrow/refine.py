"""Exact AUC in the count pass's read: the arrow reader's count pass also ships the rows.

``metrics.auc: exact`` used to read the input twice: the count pass, then the sort pass
(:func:`~tally.spark.readers.arrow.run.sort_pass_rows`), which reads label and score
again and shuffles the rows of the buckets that carry error to reducers holding whole
buckets. On click-through-like scores nearly every row is in such a bucket, so the
second read and its shuffle are most of what exact mode costs. Here the count pass's
tasks do both: each counts its batches (:class:`~tally.kernels.binary.TaskTotals`) and
packs every valid row of each exact score column (:func:`packed_rows`), grouped by the
part (reducer) of its pass-1 bucket, and the rows reach their parts' reducers, which
sum every bucket (:func:`~tally.kernels.exact_sort.part_sums`); the driver has the
count table and the sums, and :func:`tally.spark.refine.refine_histogram` only resolves
the buckets that carry error with them: one read in all.

How the rows travel (:data:`TRANSPORTS`): with Spark in local mode (driver and tasks on
one machine, one filesystem) each map task appends each part's rows to a file of its
own and the driver maps each part's files and sums them, ``defaultParallelism`` parts
at a time in threads (:func:`_through_files`); on a cluster one PySpark
``partitionBy`` shuffles the rows to their parts and the tasks' count tables to one
more partition, in one job (:func:`_through_shuffle`). Both give
the same sums; the files cost a write and a read of the packed rows, PySpark's shuffle
about as much again as the count pass itself at 20M rows (docs/benchmarks.md, *Exact
AUC: the rows through files in local mode*).

The parts must be cut before any row is counted: by the buckets of a sample of scores
read on the driver from the first row group of up to :data:`SAMPLE_FILES` files
(:func:`sample_buckets`, :func:`~tally.kernels.exact_sort.bucket_parts`), about
``part_rows`` rows a part. A poor sample only unbalances the reducers; where a part
holds too many rows the driver reads again the two-read way
(:func:`tally.metrics.exact.refine_shipped`).
"""

from __future__ import annotations

import copy
import math
import mmap
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from pyspark import TaskContext
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import FloatType

from tally.kernels import binary as binary_kernels
from tally.kernels.batches import LABEL, BatchColumns, score_column
from tally.kernels.buckets import bucket_of
from tally.kernels.cells import BinaryLayout
from tally.kernels.exact_sort import (
    MASKED_PARTS,
    Above,
    BinSums,
    KeyParts,
    PartRows,
    Scratch,
    SortLayout,
    bucket_parts,
    low_keys,
    pack,
    pack_in_place,
    part_sums,
)
from tally.kernels.validity import binary_all_valid
from tally.metrics.exact import DEFAULT_PART_ROWS, shipped_layout
from tally.plan import CountPlan
from tally.spark.cells import CountTables
from tally.spark.names import column
from tally.spark.readers.arrow import ArrowReader
from tally.spark.readers.arrow.files import ArrowInput, Tasks, _open_parquet, read_split
from tally.spark.readers.arrow.run import _ids, dense_slices, stored_strings
from tally.spark.readers.base import Shipped

if TYPE_CHECKING:
    from pyspark import Broadcast

#: Files the driver samples scores from (the first row group of each, spread over the list).
SAMPLE_FILES = 8
#: Scores sampled per file.
SAMPLE_ROWS = 1 << 13
#: Row groups of a file the sample reads from (spread over the file): the first
#: ``SAMPLE_ROWS / SAMPLE_GROUPS`` rows of each, decoded without the rest of the group.
SAMPLE_GROUPS = 4
#: A shipped part aims at this many times ``part_rows`` rows, but through files above
#: :data:`~tally.kernels.exact_sort.MASKED_PARTS` parts (:func:`part_count`): fewer,
#: larger reducers, each of which costs about as much again to start as to sort 2^22
#: rows here.
PART_ROWS = 2
#: How the shipped rows reach their reducers: ``files`` (Spark in local mode, one
#: machine: each map task writes a file per part, each reducer reads its part's files),
#: ``shuffle`` (PySpark's ``partitionBy``; any cluster), ``auto`` (``files`` where the
#: master is local, else ``shuffle``).
TRANSPORTS = ("auto", "files", "shuffle")
#: What a positive row costs a reducer, in rows: the rows near it are sorted, the others
#: only counted (``ctr_score``, 20M rows in 4 parts: 0.07 s per part of 5M rows and
#: 16k-84k positives, 0.14 s for the part of 5M rows and 262k positives).
POSITIVE_COST = 24


def packed_rows(
    labels: pa.Array, scores: pa.Array, narrow: bool, scratch: Scratch | None = None
) -> np.ndarray:
    """The valid rows of one batch, packed (:func:`~tally.kernels.exact_sort.pack`):
    the rows of :func:`~tally.kernels.binary.valid_rows`; in ``scratch`` where given
    (valid until the next batch's).

    A batch without nulls whose extremes show every row valid
    (:func:`~tally.kernels.validity.binary_all_valid`) is packed from the stored scores
    without a float64 copy.

    Keys are float32's (uint32, 4 bytes a row) for a float32 column (``narrow``) and
    for a batch of a float64 column whose every valid score is a float32 value (as
    float64 columns of upcast float32 scores hold): float32 → float64 is exact and
    monotone, so the rows order and tie as their 8-byte keys would
    (:func:`shipped_keys`); else float64's (uint64).
    """
    if not labels.null_count and not scores.null_count and len(scores):
        y = labels.to_numpy(zero_copy_only=False)
        s = scores.to_numpy(zero_copy_only=False)
        if s.dtype.kind == "f" and binary_all_valid(y, (-float(s.max()), -float(s.min())), None):
            scratch = scratch or Scratch()
            keys = shipped_keys(s, narrow, scratch)
            positive = np.equal(y, 1, out=scratch.take("positive", y.shape[0], bool))
            return pack_in_place(keys, positive)
    positive, s64, _ = binary_kernels.valid_rows(labels, scores, None)
    return pack(shipped_keys(s64, narrow), positive)


def shipped_keys(s: np.ndarray, narrow: bool, scratch: Scratch | None = None) -> np.ndarray:
    """The keys (:func:`~tally.kernels.exact_sort.score_keys`) of valid scores ``s``
    (float32 or float64, in ``[0, 1]``, no NaN) as shipped: float32's (uint32) where
    ``narrow`` or every score is a float32 value (``float64(float32(s)) == s``; one
    that is not, a float64 subnormal below float32's range among them, keeps the
    batch at 8 bytes), else float64's (uint64). A new array, or ``scratch``'s."""
    scratch = scratch or Scratch()
    rows = s.shape[0]
    s32 = scratch.take("keys32", rows, np.float32)
    if s.dtype == np.float32:
        return np.add(s, np.float32(0.0), out=s32).view(np.uint32)  # -0.0 → +0.0
    np.copyto(s32, s, casting="same_kind")
    if narrow or np.equal(s32, s, out=scratch.take("same", rows, bool)).all():
        return np.add(s32, np.float32(0.0), out=s32).view(np.uint32)
    return np.add(s, 0.0, out=scratch.take("keys64", rows, np.float64)).view(np.uint64)


def part_starts(layout: SortLayout, buckets: int, narrow: bool | None = None) -> np.ndarray:
    """The smallest packed row of each part after the first (the key of its first
    bucket's lower edge, :func:`~tally.kernels.exact_sort.low_keys`, times 2; float32
    keys where ``narrow``, by default the layout's): a row is in a part exactly when its
    bucket is (bucket ``b`` holds the scores ``b / B ≤ s < (b + 1) / B``,
    :func:`~tally.kernels.buckets.bucket_of`, and keys are monotone; a float32 value is
    ``≥`` an edge exactly when it is ``≥`` the edge rounded up to a float32), so a
    task places each row by its key alone (:class:`~tally.kernels.exact_sort.KeyParts`)."""
    first = np.searchsorted(layout.part_of, np.arange(1, layout.parts))
    keys = low_keys(first / buckets, layout.narrow if narrow is None else narrow)
    return keys << keys.dtype.type(1)


def upper_part_start(layout: SortLayout, buckets: int, narrow: bool | None = None) -> int | None:
    """With two parts, the smallest packed row of the upper one (:func:`part_starts`):
    one comparison places each row. None with more parts."""
    if layout.parts != 2:
        return None
    return int(part_starts(layout, buckets, narrow)[0])


def key_parts(layout: SortLayout, buckets: int) -> dict[int, KeyParts] | None:
    """Per width of a shipped key in bytes (4, and 8 for a float64 column), the look-up
    of a packed row's part (:class:`~tally.kernels.exact_sort.KeyParts`); None with
    two parts (one comparison, :func:`upper_part_start`). Built once on the driver and
    broadcast: 256 KB and 4 MB (:data:`~tally.kernels.exact_sort.PART_CELL_BITS`)."""
    if layout.parts == 2:
        return None
    widths = {4: True} if layout.narrow else {4: True, 8: False}
    return {size: KeyParts.of(part_starts(layout, buckets, n)) for size, n in widths.items()}


def _count_and_ship(
    ids: Iterator[int],
    tasks: Tasks,
    columns: BatchColumns,
    strings: Sequence[str],
    empty: binary_kernels.TaskTotals,
    ship: Broadcast,
    buckets: int,
    totals_key: int,
) -> Iterator[tuple[int, object]]:
    """The map side of :func:`count_and_ship`: task ids in; each batch's packed rows
    per part out as ``(partition, chunk)``, then per part the task's positives and
    negatives in the parts above it (``(partition, Above)``) and the task's totals as
    ``(totals_key, totals)``."""
    shipping: list[tuple[int, int, SortLayout, dict[int, KeyParts] | None]] = ship.value
    scratch = Scratch()
    for task in ids:
        totals = copy.deepcopy(empty)
        held = [PartRows(layout) for _, _, layout, _ in shipping]
        seen = [np.zeros((layout.parts, 2), np.int64) for _, _, layout, _ in shipping]
        uppers = [
            (upper_part_start(layout, buckets), upper_part_start(layout, buckets, True))
            for _, _, layout, _ in shipping
        ]
        for split in tasks[task]:
            # batches as large as the count pass reads: a quarter of the chunks per part
            for batch in read_split(split, columns, strings, binary_kernels.READ_ROWS):
                totals.add(batch)
                for (i, first, layout, placing), rows, count, upper in zip(
                    shipping, held, seen, uppers, strict=True
                ):
                    packed = packed_rows(
                        batch.column(LABEL), batch.column(score_column(i)), layout.narrow, scratch
                    )
                    if placing is not None:
                        part = placing[packed.dtype.itemsize].part(packed, scratch)
                        rows.add_placed(part, packed, scratch)
                    else:
                        cut = packed.dtype.type(upper[1] if packed.dtype == np.uint32 else upper[0])
                        upper_rows = scratch.take("upper", packed.shape[0], bool)
                        rows.add_halves(
                            packed, np.greater_equal(packed, cut, out=upper_rows), scratch
                        )
                    for k, chunk in rows.chunks():
                        keys = chunk[0]
                        low = scratch.take("label", keys.shape[0], keys.dtype)
                        positives = int(np.count_nonzero(np.bitwise_and(keys, 1, out=low)))
                        count[k] += (positives, keys.shape[0] - positives)
                        yield first + k, chunk
        for (_, first, _, _), count in zip(shipping, seen, strict=True):
            higher = np.cumsum(count[::-1], axis=0)[::-1] - count  # parts above each
            for k, (pos, neg) in enumerate(higher):
                yield first + k, Above(int(pos), int(neg))
        yield totals_key, (task, totals)


def _partition(key: int) -> int:
    """The partition of a shipped record: its key."""
    return key


def _in_task_order(
    totals: Iterator[tuple[int, binary_kernels.TaskTotals]],
) -> binary_kernels.TaskTotals:
    """The tasks' totals added in task order, ``((t0 + t1) + t2) + …``, whatever order
    they arrive in (each is added as soon as those before it are): the float sums are
    then those of ``treeReduce`` over the tasks in one level (:func:`~.run.collect_binary`),
    bit for bit, and the same from run to run."""
    pending: dict[int, binary_kernels.TaskTotals] = {}
    merged: binary_kernels.TaskTotals | None = None
    done = 0
    for task, value in totals:
        pending[task] = value
        while done in pending:
            value = pending.pop(done)
            merged = value if merged is None else merged.merge(value)
            done += 1
    for task in sorted(pending):  # tasks without a row: none here, but never lost
        merged = pending[task] if merged is None else merged.merge(pending[task])
    assert merged is not None
    return merged


def _reduce(
    index: int,
    items: Iterator[tuple[int, object]],
    parts: Sequence[tuple[int, np.ndarray, bool]],
    buckets: int,
    totals_key: int,
    limit: int,
    sort: bool,
) -> Iterator[tuple[int, object]]:
    """The reduce side of :func:`count_and_ship`: partition ``totals_key`` adds up the
    tasks' totals; the others are parts (``parts``: per score column, its first
    partition, where its parts start in buckets and whether its keys are float32),
    which give their buckets' sums (:func:`~tally.kernels.exact_sort.part_sums`), or
    their rows with ``sort`` False; None past ``limit`` rows (their rows let go of)."""
    if index == totals_key:
        yield index, _in_task_order(value for _, value in items)  # type: ignore[misc]
        return
    first, part_start, narrow = max((p for p in parts if p[0] <= index), key=lambda p: p[0])
    k = index - first
    chunks: list[np.ndarray] = []
    above, rows = Above(0, 0), 0
    for _, value in items:
        if isinstance(value, Above):
            above = Above(above.pos + value.pos, above.neg + value.neg)
            continue
        packed = value[0]  # type: ignore[index]
        rows += packed.shape[0]
        if rows <= limit:
            chunks.append(packed)
        else:
            chunks.clear()
    if not sort or rows > limit:
        yield index, rows
        return
    start, end = int(part_start[k]), int(part_start[k + 1])
    yield index, part_sums(chunks, buckets, start, end, above, narrow)


def _count_and_write(
    ids: Iterator[int], folder: str, **ship: object
) -> Iterator[tuple[int, object, dict[int, Above], dict[int, int]]]:
    """The map side of the ``files`` transport: :func:`_count_and_ship`'s records, the
    rows of each part appended to the file ``<folder>/<part>-<task>.<width>`` by their
    keys' bytes (4 or 8: a float64 column's batches of float32 values ship 4-byte keys,
    :func:`packed_rows`; written under a name of its own attempt and renamed when
    complete, so a retried task replaces it whole); per task out: its id, totals, what
    it sends each part from above (:class:`Above`) and the rows it wrote to each part."""
    attempt = TaskContext.get()
    tag = f"{os.getpid()}-{attempt.attemptNumber() if attempt is not None else 0}"
    for task in ids:
        files: dict[tuple[int, int], object] = {}
        above: dict[int, Above] = {}
        rows: dict[int, int] = {}
        totals: object = None
        try:
            for key, value in _count_and_ship(iter([task]), totals_key=-1, **ship):  # type: ignore[arg-type]
                if key == -1:
                    totals = value[1]  # type: ignore[index]
                elif isinstance(value, Above):
                    above[key] = value
                else:
                    packed = value[0]  # type: ignore[index]
                    name = (key, packed.dtype.itemsize)
                    if name not in files:
                        path = f"{folder}/{key}-{task}.{name[1]}.{tag}"
                        files[name] = open(path, "wb")  # noqa: SIM115
                    files[name].write(memoryview(np.ascontiguousarray(packed)).cast("B"))  # type: ignore[attr-defined]
                    rows[key] = rows.get(key, 0) + packed.shape[0]
        finally:
            for handle in files.values():
                handle.close()  # type: ignore[attr-defined]
        for key, width in files:
            os.replace(f"{folder}/{key}-{task}.{width}.{tag}", f"{folder}/{key}-{task}.{width}")
        yield task, totals, above, rows


def _mapped(path: str, dtype: type[np.generic]) -> np.ndarray:
    """The file ``path`` as a read-only array of ``dtype``, mapped from the page cache
    (its pages faulted in at once, ``MAP_POPULATE`` where the OS has it) rather than
    copied into fresh memory: a map task has just written it, and first touches of
    fresh memory cost more than the copy on this machine (docs/benchmarks.md). Copied
    where ``mmap`` has no POSIX flags (Windows)."""
    if not hasattr(mmap, "MAP_SHARED"):
        return np.fromfile(path, dtype)
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return np.zeros(0, dtype)
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        mapped = mmap.mmap(handle.fileno(), 0, flags=flags, prot=mmap.PROT_READ)
    return np.frombuffer(mapped, dtype)


def _read_part(
    key: int,
    folder: str,
    tasks: int,
    parts: Sequence[tuple[int, np.ndarray, bool]],
    buckets: int,
    above: dict[int, Above],
    sort: bool,
    threads: threading.local | None = None,
) -> object:
    """The reduce side of the ``files`` transport, in a driver's thread: part ``key``'s
    files mapped (:func:`_mapped`; each task's, in task order, its 4-byte keys then its
    8-byte ones), then as :func:`_reduce`: its buckets' sums, or its rows (``sort``
    False). The files are unlinked once mapped: their pages go when the part's arrays
    do, in this thread, so the reducers free the page cache in parallel rather than
    one removal of the folder after them (docs/benchmarks.md). A thread sums its parts
    in the buffers of one :class:`Scratch` (``threads.scratch``), reused from part to
    part."""
    first, part_start, narrow = max((p for p in parts if p[0] <= key), key=lambda p: p[0])
    chunks = []
    for task in range(tasks):
        for dtype in (np.uint32, np.uint64):
            path = f"{folder}/{key}-{task}.{np.dtype(dtype).itemsize}"
            if os.path.exists(path):
                chunks.append(_mapped(path, dtype))
                os.unlink(path)
    if not sort:
        return sum(c.shape[0] for c in chunks)
    k = key - first
    start, end = int(part_start[k]), int(part_start[k + 1])
    scratch = getattr(threads, "scratch", None)
    if threads is not None and scratch is None:
        scratch = threads.scratch = Scratch()
    return part_sums(chunks, buckets, start, end, above.get(key, Above(0, 0)), narrow, scratch)


@dataclass(frozen=True)
class _Shipping:
    """What a transport of the shipped rows needs: the input, the map side's arguments
    (:func:`_count_and_ship`'s but ``totals_key``), per score column its first part,
    part starts and key width, the parts in all, the most rows a reducer takes, and
    whether the reducers sum (else they only count the rows)."""

    source: ArrowInput
    ship: dict[str, object]
    parts: list[tuple[int, np.ndarray, bool]]
    total_parts: int
    limit: int
    sort: bool


#: A transport's result: the tasks' totals merged in task order, and per part what its
#: reducer gave (:class:`BinSums`, or its rows).
_Received = tuple[binary_kernels.TaskTotals, dict[int, object]]


def _through_files(spark: SparkSession, job: _Shipping) -> _Received:
    """The ``files`` transport (Spark in local mode: the driver's and every task's
    files are one machine's): a job counts and writes each part's rows to files in a
    folder of its own (:func:`_count_and_write`); the driver then reads and sums each
    part's files (:func:`_read_part`) in ``defaultParallelism`` threads (numpy lets go
    of the GIL in the reducers' sorts, counts and element-wise loops), without a
    second Spark job, its Python workers or pickled results; the folder is removed
    after. The merged totals and per part its reducer's result (its rows where more
    than ``limit``: not read)."""
    root = spark.conf.get("spark.local.dir", None)
    folder = tempfile.mkdtemp(prefix="tally-exact-", dir=(root or "").split(",")[0] or None)
    try:
        run = partial(_count_and_write, folder=folder, **job.ship)
        written = _ids(spark, job.source).mapPartitions(run).collect()
        totals = _in_task_order((task, value) for task, value, _, _ in written)  # type: ignore[misc]
        above: dict[int, Above] = {}
        rows = dict.fromkeys(range(job.total_parts), 0)
        for _, _, sent, wrote in written:
            for key, value in sent.items():
                got = above.get(key, Above(0, 0))
                above[key] = Above(got.pos + value.pos, got.neg + value.neg)
            for key, count in wrote.items():
                rows[key] += count
        out: dict[int, object] = {k: n for k, n in rows.items() if n > job.limit}
        wanted = [k for k in range(job.total_parts) if k not in out]
        read = partial(
            _read_part,
            folder=folder,
            tasks=len(job.source.tasks),
            parts=job.parts,
            buckets=job.ship["buckets"],
            above=above,
            sort=job.sort,
            threads=threading.local(),
        )
        threads = max(1, min(len(wanted), spark.sparkContext.defaultParallelism))
        with ThreadPoolExecutor(threads, thread_name_prefix="tally-part") as pool:
            out.update(zip(wanted, pool.map(read, wanted), strict=True))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return totals, out


def _through_shuffle(spark: SparkSession, job: _Shipping) -> _Received:
    """The ``shuffle`` transport: one ``partitionBy`` carries the rows to their parts
    and the tasks' totals to one more partition (:func:`_count_and_ship`,
    :func:`_reduce`), one job."""
    last = job.total_parts
    run = partial(_count_and_ship, totals_key=last, **job.ship)
    reduce = partial(
        _reduce,
        parts=job.parts,
        buckets=job.ship["buckets"],
        totals_key=last,
        limit=job.limit,
        sort=job.sort,
    )
    shuffled = _ids(spark, job.source).mapPartitions(run).partitionBy(last + 1, _partition)
    out = dict(shuffled.mapPartitionsWithIndex(reduce).collect())
    return out.pop(last), out  # type: ignore[return-value]


def transport_of(spark: SparkSession, transport: str) -> str:
    """``files`` or ``shuffle``: ``transport`` (:data:`TRANSPORTS`), ``auto`` resolved
    by Spark's master (``files`` for ``local…``: one machine)."""
    if transport not in TRANSPORTS:
        raise ValueError(f"transport {transport!r} is not one of {TRANSPORTS}")
    if transport != "auto":
        return transport
    return "files" if spark.sparkContext.master.startswith("local") else "shuffle"


def sample_buckets(
    source: ArrowInput, label: str, score: str, buckets: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """The pass-1 buckets of scores sampled on the driver (up to :data:`SAMPLE_ROWS`
    from each of up to :data:`SAMPLE_FILES` files spread over the input's files: the
    first rows of up to :data:`SAMPLE_GROUPS` row groups spread over each; nulls, NaN
    and scores outside ``[0, 1]`` dropped), whether each
    sampled row's label is 1, and an estimate of the input's rows (the sampled files'
    rows scaled by bytes). ``label``, ``score``: the stored column names."""
    sizes: dict[str, int] = {}
    for task in source.tasks:
        for split in task:
            sizes[split.path] = split.file_size
    paths = list(sizes)
    picked = sorted({int(i) for i in np.linspace(0, len(paths) - 1, SAMPLE_FILES)})
    found, positive, rows, read_bytes = [], [], 0, 0
    for i in picked:
        parquet = _open_parquet(paths[i])
        rows += parquet.metadata.num_rows
        read_bytes += sizes[paths[i]]
        groups = parquet.metadata.num_row_groups
        spread = sorted({int(g) for g in np.linspace(0, groups - 1, min(groups, SAMPLE_GROUPS))})
        for g in spread:
            batches = parquet.iter_batches(
                SAMPLE_ROWS // SAMPLE_GROUPS, row_groups=[g], columns=sorted({label, score})
            )
            batch = next(batches, None)
            if batch is None:
                continue
            s = np.asarray(batch.column(score).to_numpy(zero_copy_only=False), np.float64)
            y = np.asarray(batch.column(label).to_numpy(zero_copy_only=False), np.float64)
            inside = (s >= 0) & (s <= 1)
            found.append(s[inside])
            positive.append(y[inside] == 1)
    estimate = rows * sum(sizes.values()) / max(read_bytes, 1)
    sample = np.concatenate(found) if found else np.zeros(0)
    labels = np.concatenate(positive) if positive else np.zeros(0, bool)
    return bucket_of(sample, buckets), labels, estimate


def part_count(rows: float, parallelism: int, part_rows: int, transport: str) -> int:
    """How many parts the shipped rows (``rows``, estimated) of a score column go to: a
    multiple of ``parallelism``, of about ``PART_ROWS · part_rows`` rows each. Through
    ``files``, where that makes more than :data:`~tally.kernels.exact_sort.MASKED_PARTS`
    parts, of about ``part_rows``: a map task then groups its rows by a counting sort,
    whose cost does not grow with the parts, and a reducer's count table per value
    (:func:`~tally.kernels.exact_sort.value_counts`) spans half as many values, which
    stays in cache beside the other threads' (docs/benchmarks.md, *smaller parts*).
    With fewer parts a task groups its rows by one mask per part, which costs more the
    more parts there are."""
    parts = parallelism * max(1, math.ceil(rows / (parallelism * PART_ROWS * part_rows)))
    if transport == "files" and parts > MASKED_PARTS:
        parts = parallelism * max(1, math.ceil(rows / (parallelism * part_rows)))
    return parts


def count_and_ship(
    spark: SparkSession,
    source: ArrowInput,
    plan: CountPlan,
    shipped_scores: Sequence[tuple[str, bool]],
    part_rows: int,
    sort: bool = True,
    transport: str = "auto",
) -> tuple[pa.Table, dict[str, int], dict[str, Shipped]] | None:
    """The binary count table of ``plan`` (as :func:`~.run.collect_binary` counts it),
    the values merged into each ``__other__`` slice, and per score column of
    ``shipped_scores`` (name, float32 keys) what the reducers of its valid rows gave
    (:class:`Shipped`), in one read (module docstring; ``transport``: how the rows reach
    the reducers, :data:`TRANSPORTS`); None when the tables are too large to count onto
    the driver. ``sort`` False: the reducers only count the rows they receive (the
    benchmark's lower bound of exact mode)."""
    dense = dense_slices(spark, source, plan)
    if dense is None:
        return None
    kept, merged = dense
    columns = BatchColumns.of(plan)
    parallelism = spark.sparkContext.defaultParallelism
    way = transport_of(spark, transport)
    shipping, parts_of = [], {}
    first = 0
    for name, narrow in shipped_scores:
        i = plan.scores.index(name)
        sample, positive, rows = sample_buckets(
            source, columns.sources[LABEL], columns.sources[score_column(i)], plan.buckets
        )
        parts = part_count(rows, parallelism, part_rows, way)
        weights = 1.0 + POSITIVE_COST * positive
        part_start = bucket_parts(sample, plan.buckets, parts, weights)
        layout = shipped_layout(part_start, narrow)
        shipping.append((i, first, layout, key_parts(layout, plan.buckets)))
        parts_of[name] = (first, part_start, narrow)
        first += int(part_start.shape[0]) - 1
    empty = binary_kernels.TaskTotals(
        len(plan.scores), BinaryLayout.of(plan), columns.spec_columns, kept
    )
    broadcast = spark.sparkContext.broadcast(shipping)
    ship = {
        "tasks": source.tasks,
        "columns": columns,
        "strings": stored_strings(source, plan.slice_columns),
        "empty": empty,
        "ship": broadcast,
        "buckets": plan.buckets,
    }
    through = _through_files if way == "files" else _through_shuffle
    try:
        job = _Shipping(source, ship, list(parts_of.values()), first, 4 * part_rows, sort)
        totals, out = through(spark, job)
    finally:
        broadcast.destroy()
    table = totals.table(plan.scores, plan.slices)
    shipped = {}
    for name, (start, part_start, _) in parts_of.items():
        got = [out[start + k] for k in range(int(part_start.shape[0]) - 1)]
        complete = sort and all(isinstance(g, BinSums) for g in got)
        rows = sum(g if isinstance(g, int) else int(g.rows.sum()) for g in got)  # type: ignore[union-attr]
        sums = BinSums.concat(got) if complete else None  # type: ignore[arg-type]
        shipped[name] = Shipped(sums, len(got), rows)
    return table, merged, shipped


@dataclass(frozen=True)
class ShippingArrowReader(ArrowReader):
    """The arrow reader whose binary count pass also ships the rows of the score
    columns ``exact_scores`` (``metrics.auc: exact``, unweighted) to the reducers of
    exact AUC (module docstring); :meth:`take_shipped` hands them to
    :func:`tally.spark.refine.refine_histogram`. Every other pass is the arrow
    reader's."""

    exact_scores: tuple[str, ...] = ()
    part_rows: int = DEFAULT_PART_ROWS
    sort: bool = True
    transport: str = "auto"
    shipped: dict[str, Shipped] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def of(
        cls,
        reader: ArrowReader,
        scores: Sequence[str],
        part_rows: int,
        sort: bool = True,
        transport: str = "auto",
    ) -> ShippingArrowReader:
        return cls(
            reader.tasks,
            exact_scores=tuple(scores),
            part_rows=part_rows,
            sort=sort,
            transport=transport,
        )

    def count(self, df: DataFrame, plan: CountPlan) -> CountTables:
        wanted = [s for s in self.exact_scores if s in plan.scores]
        if plan.task != "binary" or plan.weighted or not wanted:
            return super().count(df, plan)
        narrow = [
            isinstance(df.select(column(s)).schema[0].dataType, FloatType)
            and plan.score_transform == "none"
            for s in wanted
        ]
        spark = df.sparkSession
        scores = list(zip(wanted, narrow, strict=True))
        counted = count_and_ship(
            spark, self, plan, scores, self.part_rows, self.sort, self.transport
        )
        if counted is None:
            return super().count(df, plan)
        table, merged, shipped = counted
        self.shipped.clear()
        self.shipped.update(shipped)
        return CountTables.on_driver(spark, table, merged)

    def take_shipped(self, score: str) -> Shipped | None:
        """What the reducers of ``score``'s rows gave in the last count pass (once), or None."""
        return self.shipped.pop(score, None)


def shipping_reader(
    reader: object,
    plan: CountPlan,
    part_rows: int = DEFAULT_PART_ROWS,
    sort: bool = True,
    transport: str = "auto",
) -> object:
    """``reader`` as a :class:`ShippingArrowReader` of every score column of ``plan``
    when it is the arrow reader and ``plan`` unweighted binary; else ``reader``."""
    if (
        isinstance(reader, ArrowReader)
        and not isinstance(reader, ShippingArrowReader)
        and plan.task == "binary"
        and not plan.weighted
    ):
        return ShippingArrowReader.of(reader, plan.scores, part_rows, sort, transport)
    return reader


__all__ = [
    "Shipped",
    "ShippingArrowReader",
    "count_and_ship",
    "packed_rows",
    "sample_buckets",
    "shipping_reader",
]
