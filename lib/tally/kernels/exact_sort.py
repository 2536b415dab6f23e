"""The sort pass of exact AUC (``metrics.auc: exact``) in numpy: rows of the bins that
carry error, sorted by score, give each bin's exact share of ROC AUC and average precision.

**Keys.** A score ``s`` in ``[0, 1]`` is sorted by its IEEE-754 bit pattern, which is
monotone for non-negative floats: ``key(s) = bits(s + 0.0)`` (adding ``+0.0`` turns
``−0.0`` into ``+0.0``, so the two are one value, a tie, as for scikit-learn). Scores
read from a float32 column are sorted as float32 (``narrow``: 30-bit keys, rows of
4 bytes), others as float64 (62-bit keys, 8 bytes); in one read, a float64 column's
batches of float32 values arrive with float32 keys (:func:`one_width`, :func:`widen`).
The label rides in the lowest bit: ``packed = key · 2 + y``, so one ``np.sort`` of
unsigned integers orders the rows by score, negatives before positives at equal scores
(weighted rows: ``argsort``, and the weights follow).

**Rows to reducers.** Every row of a chosen bin goes to one reducer (a *part*): parts
hold contiguous runs of bins in score order (:class:`SortLayout`: dense table from a
bin's node id to its part). A task groups the rows of each batch by part, unsorted
(:class:`PartRows`); a reducer concatenates them (:func:`resolve`). In one read, where
parts are runs of buckets cut before any row is counted, a row's part follows from its
packed key alone (:class:`KeyParts`), and the task packs and places its batches in
arrays it reuses (:class:`Scratch`).

**Sorting few rows.** A reducer does not sort all its rows (a comparison sort of 5M
keys took 0.25-0.4 s here, the reducer's largest cost). It cuts its key range into at
most ``2^22`` equal *sub-bins* (``sub(key) = (key - its smallest key) >> shift``)
and counts the rows of each (``np.bincount``). A sub-bin is *kept* when it holds a
positive, a bin's lower edge, or the first or last filled sub-bin of a bin. Every
other sub-bin holds only negatives of one bin, with no positive tied with them or
between them, so only their number matters: they are counted
(:class:`NegativeGaps`). Of a kept sub-bin that holds a positive and no bin edge or
extreme, only the rows from its smallest positive's key to its largest's are sorted:
the negatives below them are below every positive of the sub-bin, those above above
every one, so they are counted too (:func:`_trimmed`). The rows sorted are then few
(:func:`split_rows`: on the benchmark's 20M ``ctr_score``, 0.24M and 0.53M of the two
parts' 12.6M and 7.4M rows, against 1.6M each without the trim).
:func:`counted_sums` adds the counted negatives below each positive and each bin edge.

**Counting few values.** Where a part's keys span few distinct values (at most
:data:`DENSE_SLOTS` / 2: at a billion click-through rows most parts hold 10–25M
rows spanning 0.4–1M float32 values), no row is sorted: one ``np.bincount`` of
``(key / 2^t − smallest) · 2 + y`` counts every row per value and label
(:func:`value_counts`; ``2^t`` the largest power of two dividing every key, so float32
values stored as float64 count as their float32 keys), and :func:`value_sums` gives
the same sums as the sort, bit for bit. :func:`unweighted_sums` chooses.

**Per bin** ``b`` with distinct values ``v`` (positives ``p_v``, negatives ``n_v``):

* ``pairs_b = Σ_v p_v · (n_{<v} + ½ n_v)``, ``n_{<v}`` the negatives of ``b`` below ``v``:
  the pairs of ``b`` ordered by their scores, ties ½ (the exact share of ``b`` in
  ``roc_auc_score``'s numerator ``P · N · AUC``);
* ``ap_b = Σ_v p_v · tp_v / (tp_v + fp_v)`` over ``p_v > 0``, where
  ``tp_v = tp_above_b + Σ_{u ≥ v in b} p_u`` and ``fp_v`` likewise (``tp_above_b``,
  ``fp_above_b``: positives and negatives of the bins above ``b``, from pass 1): the
  exact share of ``b`` in ``P · average_precision_score`` (one threshold per distinct
  score, precision there).

:func:`tally.metrics.exact.exact_roc_auc` and :func:`~tally.metrics.exact.exact_average_precision`
add these up with the bins left as they are.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def score_keys(s: np.ndarray, narrow: bool) -> np.ndarray:
    """Monotone unsigned keys of scores ``s >= 0`` (float64; float32 values when
    ``narrow``): ``bits(s + 0.0)`` as float32 (uint32) or float64 (uint64)."""
    if narrow:
        return (s.astype(np.float32) + np.float32(0.0)).view(np.uint32)
    return (np.asarray(s, np.float64) + 0.0).view(np.uint64)


def key_scores(keys: np.ndarray, narrow: bool) -> np.ndarray:
    """The scores (float64) of :func:`score_keys` ``keys``."""
    if narrow:
        return keys.astype(np.uint32).view(np.float32).astype(np.float64)
    return keys.astype(np.uint64).view(np.float64)


def low_keys(low: np.ndarray, narrow: bool) -> np.ndarray:
    """Per bin lower bound ``low`` (float64, ascending): the smallest key of a score
    ``>= low`` (as float32 when ``narrow``: ``low`` rounded up to a float32)."""
    low = np.asarray(low, np.float64) + 0.0
    if not narrow:
        return low.view(np.uint64)
    f = low.astype(np.float32)
    below = f.astype(np.float64) < low
    f[below] = np.nextafter(f[below], np.float32(np.inf))
    return f.view(np.uint32)


def pack(keys: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """``key · 2 + y``: sorting it orders by score, negatives first at equal scores."""
    packed = keys << keys.dtype.type(1)
    packed |= positive.astype(keys.dtype)
    return packed


def pack_in_place(keys: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """:func:`pack` into ``keys`` itself (no new array)."""
    np.left_shift(keys, keys.dtype.type(1), out=keys)
    return np.bitwise_or(keys, positive, out=keys)


def widen(packed: np.ndarray) -> np.ndarray:
    """Packed rows of float32 keys (uint32) as the packed rows of the same scores'
    float64 keys (uint64): ``bits64(float64(f)) · 2 + y`` for ``bits32(f) · 2 + y``.
    float32 → float64 is exact and monotone, so the rows order and tie as the 8-byte
    rows of those scores do."""
    one = np.uint32(1)
    keys = (packed >> one).view(np.float32).astype(np.float64).view(np.uint64)
    out = keys << np.uint64(1)
    out |= (packed & one).astype(np.uint64)
    return out


def one_width(chunks: Sequence[np.ndarray], narrow: bool) -> tuple[list[np.ndarray], bool]:
    """A part's packed chunks as keys of one width, and whether it is float32's.

    A float64 column's map task ships a batch whose every score is a float32 value
    with 4-byte keys (:func:`tally.spark.readers.arrow.refine.packed_rows`): a part
    whose chunks are all such is summed on its float32 keys (the same order and ties,
    so the same sums, bit for bit); in a part that also holds 8-byte chunks the 4-byte
    ones are widened (:func:`widen`). ``narrow``: the column is float32 (every chunk
    4-byte)."""
    chunks = list(chunks)
    if narrow or (chunks and all(c.dtype == np.uint32 for c in chunks)):
        return chunks, True
    return [widen(c) if c.dtype == np.uint32 else c for c in chunks], False


@dataclass(frozen=True)
class SortLayout:
    """Where each row of the sort pass goes: ``part_of[node − first]`` is the part
    (reducer) of the bin with that node id, −1 for bins not sorted."""

    first: int
    part_of: np.ndarray
    parts: int
    narrow: bool
    weighted: bool

    def parts_of(self, node: np.ndarray) -> np.ndarray:
        """The part of each row's node id (−1: not sorted)."""
        at = node - self.first if self.first else node
        size = self.part_of.shape[0]
        if at.size == 0 or (int(at.min()) >= 0 and int(at.max()) < size):
            return self.part_of[at]
        part = np.full(node.shape[0], -1, np.int32)
        known = (at >= 0) & (at < size)
        part[known] = self.part_of[at[known]]
        return part


#: Up to this many parts a batch is grouped by one boolean mask per part; above it by
#: a stable sort of the part numbers (pyarrow's ``array_sort_indices``, a counting
#: sort for small integers).
MASKED_PARTS = 8


class Scratch:
    """Arrays reused from batch to batch by a map task (the temporaries of packing and
    placing a batch's rows) and from part to part by a reducer's thread (its rows'
    slots and sub-bins), each grown to the largest use. Fresh arrays each time cost
    page faults on the machines we measured, more than the arithmetic
    (docs/benchmarks.md). What is taken is valid until the same name is taken again."""

    def __init__(self) -> None:
        self._arrays: dict[tuple[str, np.dtype], np.ndarray] = {}

    def take(self, name: str, rows: int, dtype: type[np.generic] | np.dtype) -> np.ndarray:
        """An array of ``rows`` elements of ``dtype`` (values left from earlier use)."""
        key = (name, np.dtype(dtype))
        array = self._arrays.get(key)
        if array is None or array.shape[0] < rows:
            array = self._arrays[key] = np.empty(rows, dtype)
        return array[:rows]


def code_type(values: int) -> type[np.unsignedinteger]:
    """The narrowest unsigned integer type that holds ``values`` codes ``0 … values − 1``
    (the fewer bytes, the cheaper a stable sort of them: pyarrow counts small integers)."""
    return np.uint8 if values <= 0x100 else np.uint16 if values <= 0x10000 else np.uint32


#: :class:`KeyParts` looks a packed row's part up among ``2^bits`` cells of its top
#: bits, per key width in bytes: float32 keys 18 (a table of 256 KB, one byte a cell
#: below 255 parts; 0.6% of click-through-like float32 rows in cells to search),
#: float64 keys 22 (4 MB: a cell of 18 bits spans 1/256 of a power of two, and 5% of
#: full-precision click-through-like rows were searched, 6.0 against 3.7 ns a row:
#: docs/benchmarks.md).
PART_CELL_BITS = {4: 18, 8: 22}


@dataclass(frozen=True)
class KeyParts:
    """The part of each packed row (:func:`pack`) of a score in ``[0, 1]`` where parts
    hold contiguous runs of keys: with ``starts`` the smallest packed row of each part
    after the first (ascending), a row ``r`` is in part
    ``searchsorted(starts, r, side="right")`` (``starts[k − 1] ≤ r < starts[k]``).

    Looked up rather than searched: the packed row of a score in ``[0, 1]`` is below
    ``2^(w − 1)`` (``w``: 32 or 64 bits; ``key(1.0) · 2 + 1`` is), so its next
    ``bits`` bits (:data:`PART_CELL_BITS`) pick one of ``2^bits`` cells of equal
    width. A cell inside which no part starts holds its rows' part; the few others
    hold :attr:`unsure`, whose rows alone are searched. The count pass of exact AUC
    in one read places every row so, without its bucket (the bucket, then its part,
    cost 4–6 times the look-up here: docs/benchmarks.md)."""

    starts: np.ndarray
    shift: int
    cells: np.ndarray
    unsure: int

    @classmethod
    def of(cls, starts: np.ndarray, bits: int | None = None) -> KeyParts:
        """The look-up of parts starting at the packed rows ``starts`` (uint32 or
        uint64, ascending: a part may start where the next does, and hold no row), in
        ``2^bits`` cells (by default :data:`PART_CELL_BITS` of the key width)."""
        starts = np.asarray(starts)
        bits = PART_CELL_BITS[starts.dtype.itemsize] if bits is None else bits
        shift = np.iinfo(starts.dtype).bits - 1 - bits
        code = code_type(starts.shape[0] + 2)  # the parts and unsure
        unsure = int(np.iinfo(code).max)
        # a cell's part: the number of parts starting in the cells below it; a cell in
        # which a part starts is unsure
        cell = (starts >> starts.dtype.type(shift)).astype(np.int64)
        starting = np.bincount(cell, minlength=1 << bits)
        cells = (np.cumsum(starting) - starting).astype(code)
        cells[starting > 0] = unsure
        return cls(starts, shift, cells, unsure)

    def part(self, packed: np.ndarray, scratch: Scratch | None = None) -> np.ndarray:
        """The part of each packed row (unsigned integers of the cells' type), in
        ``scratch`` where given."""
        scratch = scratch or Scratch()
        rows = packed.shape[0]
        cell = scratch.take("cell", rows, np.intp)  # indices of np.take's own type: no copy
        np.right_shift(packed, packed.dtype.type(self.shift), out=cell, casting="unsafe")
        code = np.take(self.cells, cell, out=scratch.take("code", rows, self.cells.dtype))
        unsure = np.flatnonzero(np.equal(code, self.unsure, out=scratch.take("unsure", rows, bool)))
        if unsure.size:
            code[unsure] = np.searchsorted(self.starts, packed[unsure], side="right")
        return code


class PartRows:
    """One task's rows of the sort pass, grouped by part per batch (not sorted)."""

    def __init__(self, layout: SortLayout) -> None:
        self.layout = layout
        self.runs: list[tuple[int, np.ndarray, np.ndarray | None]] = []

    def add(
        self, s: np.ndarray, positive: np.ndarray, w: np.ndarray | None, node: np.ndarray
    ) -> None:
        """Add rows (score, label, weight or None, node id); rows of bins not sorted
        (part −1) are dropped."""
        part = self.layout.parts_of(node)
        self.add_packed(part, pack(score_keys(s, self.layout.narrow), positive), w)

    def add_packed(self, part: np.ndarray, packed: np.ndarray, w: np.ndarray | None) -> None:
        """Add rows already packed (:func:`pack`) with their part (−1: dropped)."""
        # rows per part, those dropped (part −1) first
        sizes = np.bincount(part + 1, minlength=self.layout.parts + 1)
        filled = np.flatnonzero(sizes[1:])
        if filled.size == 1 and sizes[0] == 0:  # one part, nothing dropped: as it is
            self.runs.append((int(filled[0]), packed, w))
        elif self.layout.parts <= MASKED_PARTS:
            self._add_masked(part, filled, packed, w)
        else:
            self._add_sorted_by_part(part, sizes, packed, w)

    def _add_masked(
        self, part: np.ndarray, filled: np.ndarray, packed: np.ndarray, w: np.ndarray | None
    ) -> None:
        """Group rows by one boolean mask per part of ``filled``."""
        for k in filled:  # np.compress: several times faster than packed[mask] here
            inside = part == k
            kept_w = None if w is None else np.compress(inside, w)
            self.runs.append((int(k), np.compress(inside, packed), kept_w))

    def add_halves(
        self, packed: np.ndarray, upper: np.ndarray, scratch: Scratch | None = None
    ) -> None:
        """Add rows already packed to a layout of two parts: part 1 where ``upper``
        (both may be scratch: what is kept is copied)."""
        rows = packed.shape[0]
        above = int(np.count_nonzero(upper))
        if rows == 0:
            return
        if above in (0, rows):  # one part
            self.runs.append((int(above > 0), packed.copy(), None))
            return
        lower = np.logical_not(upper, out=(scratch or Scratch()).take("lower", rows, bool))
        self.runs.append((0, np.compress(lower, packed), None))
        self.runs.append((1, np.compress(upper, packed), None))

    def add_placed(
        self, part: np.ndarray, packed: np.ndarray, scratch: Scratch | None = None
    ) -> None:
        """Add rows already packed with their part (``0 … parts − 1``, unsigned, as
        :meth:`KeyParts.part` gives it; none dropped). Both may be scratch: what is
        kept is copied."""
        if packed.shape[0] == 0:
            return
        low, high = int(part.min()), int(part.max())
        if low == high:  # one part
            self.runs.append((low, packed.copy(), None))
        elif self.layout.parts <= MASKED_PARTS:
            filled = np.flatnonzero(np.bincount(part, minlength=self.layout.parts))
            self._add_masked(part, filled, packed, None)
        else:
            self._add_by_code(part, None, packed, None, scratch)

    def _add_sorted_by_part(
        self, part: np.ndarray, sizes: np.ndarray, packed: np.ndarray, w: np.ndarray | None
    ) -> None:
        """Group rows by a stable sort of ``part + 1`` (dropped rows first)."""
        self._add_by_code((part + 1).astype(code_type(self.layout.parts + 1)), sizes, packed, w)

    def _add_by_code(
        self,
        code: np.ndarray,
        sizes: np.ndarray | None,
        packed: np.ndarray,
        w: np.ndarray | None,
        scratch: Scratch | None = None,
    ) -> None:
        """Group rows by a stable sort of ``code`` (``sizes``: rows per code, rows of
        code 0 dropped; None: the part itself, none dropped, sizes found from the
        sorted codes). pyarrow sorts small integers by counting, faster than numpy's
        stable argsort here (docs/benchmarks.md)."""
        # uint64 indices viewed as intp (they are < 2^63): np.take then makes no copy
        order = pc.array_sort_indices(pa.array(code)).to_numpy().view(np.intp)
        if sizes is None:
            rows, codes = code.shape[0], self.layout.parts
            ordered = (scratch or Scratch()).take("sorted", rows, code.dtype)
            np.take(code, order, out=ordered, mode="clip")  # clip: unbuffered; all in range
            ends = np.searchsorted(ordered, np.arange(codes, dtype=code.dtype), side="right")
            sizes = np.r_[0, ends[0], np.diff(ends)]
        order = order[int(sizes[0]) :]
        packed = np.take(packed, order)
        w = None if w is None else np.take(w, order)
        ends = np.cumsum(sizes[1:])
        for k in np.flatnonzero(sizes[1:]):
            start, stop = int(ends[k] - sizes[k + 1]), int(ends[k])
            self.runs.append((int(k), packed[start:stop], None if w is None else w[start:stop]))

    @property
    def rows(self) -> int:
        return sum(packed.shape[0] for _, packed, _ in self.runs)

    def chunks(self) -> Iterator[tuple[int, tuple[np.ndarray, np.ndarray | None]]]:
        """``(part, (packed, weights or None))``: each batch's rows of each part, in
        the order added; they are let go of as they are yielded."""
        runs, self.runs = self.runs, []
        for k, packed, w in runs:
            yield k, (packed, w)


def bucket_parts(
    sample: np.ndarray, buckets: int, parts: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """Where each of at most ``parts`` contiguous runs of buckets starts (bucket
    indices, ascending, ``0`` first, ``buckets`` last), cut so that each holds about
    the same share of ``sample`` (the buckets of sampled rows, each of weight
    ``weights``, default 1): the parts of a sort pass chosen before the rows are
    counted (``metrics.auc: exact`` in one read)."""
    parts = max(1, min(parts, buckets))
    if parts == 1 or sample.size == 0:
        cuts = np.linspace(0, buckets, parts + 1)[1:-1]
    else:
        order = np.argsort(sample, kind="stable")
        weight = np.ones(sample.size) if weights is None else np.asarray(weights, np.float64)
        cumulative = np.cumsum(weight[order])
        shares = cumulative[-1] * np.arange(1, parts) / parts
        cuts = sample[order][np.minimum(np.searchsorted(cumulative, shares), sample.size - 1)]
    inner = np.unique(np.clip(np.ceil(cuts).astype(np.int64), 1, max(buckets - 1, 1)))
    inner = inner[inner < buckets]
    return np.r_[0, inner, buckets].astype(np.int64)


@dataclass(frozen=True)
class SortJob:
    """What the reducers need about the bins sorted, in score order: the lower key of
    each (:func:`low_keys`), the positives and negatives of every bin above it, and
    which bins each part holds (``part_start[k] … part_start[k + 1]``)."""

    low: np.ndarray
    tp_above: np.ndarray
    fp_above: np.ndarray
    part_start: np.ndarray
    narrow: bool
    weighted: bool


@dataclass(frozen=True)
class BinSums:
    """Per sorted bin (its index into the job's bins): rows, positives, negatives
    (weight sums when weighted), whether it holds one distinct score, its smallest and
    largest score, ``pairs`` and ``ap`` (module docstring)."""

    bin: np.ndarray
    rows: np.ndarray
    pos: np.ndarray
    neg: np.ndarray
    single: np.ndarray
    low: np.ndarray
    high: np.ndarray
    pairs: np.ndarray
    ap: np.ndarray

    @staticmethod
    def concat(parts: Sequence[BinSums]) -> BinSums:
        fields = BinSums.__dataclass_fields__
        if not parts:
            return BinSums(*(np.zeros(0) for _ in fields))
        joined = BinSums(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields))
        order = np.argsort(joined.bin, kind="stable")
        return BinSums(*(getattr(joined, f)[order] for f in fields))


def resolve(
    part: int, chunks: Sequence[tuple[np.ndarray, np.ndarray | None]], job: SortJob
) -> BinSums:
    """The :class:`BinSums` of one part's bins from its rows (``chunks`` of
    :meth:`PartRows.chunks`)."""
    first, end = int(job.part_start[part]), int(job.part_start[part + 1])
    dtype = np.uint32 if job.narrow else np.uint64
    packed = np.concatenate([c[0] for c in chunks]) if chunks else np.zeros(0, dtype)
    if not job.weighted:
        return unweighted_sums([packed], job, first, end)
    w = np.concatenate([c[1] for c in chunks]) if chunks else np.zeros(0)  # type: ignore[misc]
    order = np.argsort(packed, kind="stable")
    return weighted_sums(packed[order], w[order], job, first, end)


#: At most ``2^TABLE_BITS`` sub-bins per reducer (:func:`split_rows`): int64 counts of
#: 32 MB; finer sub-bins keep fewer rows to sort but count into a larger table
#: (2^18 to 2^22 measured on ``ctr_score``: docs/benchmarks.md, exact AUC).
TABLE_BITS = 22


@dataclass(frozen=True)
class NegativeGaps:
    """Negatives counted per sub-bin, not sorted (:func:`split_rows`): ``through[g]`` of
    them lie in sub-bins ``0 … g`` (``through[-1]``: all); the sub-bin of a key is
    ``(key − base) >> shift``. A kept sub-bin counts none (its rows are sorted), so
    for its keys ``through`` is the counted negatives below them."""

    through: np.ndarray
    base: int
    shift: int

    def sub_bins(self, keys: np.ndarray) -> np.ndarray:
        """The sub-bin of each key, capped at the table's end (bin edges above the
        largest row: all counted negatives lie below them); keys below ``base`` (bin
        edges under the smallest row) are in sub-bin 0, which is kept."""
        dtype = keys.dtype.type
        above = np.maximum(keys, dtype(self.base))
        sub = ((above - dtype(self.base)) >> dtype(self.shift)).astype(np.intp)
        return np.minimum(sub, self.through.shape[0] - 1)

    def below(self, keys: np.ndarray) -> np.ndarray:
        """Counted negatives below each key, for keys in kept sub-bins: all of their
        sub-bin's rows are sorted, so the counted ones below are in lower sub-bins."""
        return self.through[self.sub_bins(keys)]

    def below_edges(self, low: np.ndarray) -> np.ndarray:
        """Counted negatives below each bin's lower key ``low`` (kept sub-bins), and
        all of them last."""
        return np.r_[self.below(low), self.through[-1]]


#: Rows :func:`split_rows` finds the sub-bins of at a time, into buffers it reuses: a
#: block's sub-bins in ``intp`` are 64 MB, and each block after the first adds its
#: counts to the table, a fresh one from ``np.bincount`` (2^21 rows a block made 6
#: tables of a 12.6M-row part; docs/benchmarks.md, *Reducers in blocks*).
SPLIT_BLOCK_ROWS = 1 << 23

#: Rows :func:`split_rows` labels, picks and finds the sub-bins of at a time within a
#: block: their masks stay in cache (docs/benchmarks.md, *sub-bins counted across
#: chunks*).
SPLIT_PIECE_ROWS = 1 << 19


def _blocks(chunks: Sequence[np.ndarray], rows: int) -> Iterator[np.ndarray]:
    """``chunks`` in order, cut into views of at most ``rows`` rows."""
    for c in chunks:
        for i in range(0, c.shape[0], rows):
            yield c[i : i + rows]


def split_rows(
    packed: np.ndarray | Sequence[np.ndarray],
    job: SortJob,
    first: int,
    end: int,
    table_bits: int | None = None,
    scratch: Scratch | None = None,
) -> tuple[np.ndarray, NegativeGaps]:
    """The rows of bins ``first … end − 1`` (unsorted ``packed``: one array or the
    chunks a reducer received, not concatenated) that need sorting, sorted, and the
    negatives that need only counting (module docstring: *Sorting few rows*).

    Sub-bins: ``(key − base) >> shift`` with ``base`` the smallest key and the
    smallest ``shift`` that leaves at most ``2^table_bits`` of them (default: about as
    many as rows, at most ``2^TABLE_BITS``); ``packed`` must hold a row. Kept sub-bins
    hold a positive, a bin's lower key, or the first or last filled sub-bin after a
    bin's lower key and before the next one's: then every other sub-bin lies inside
    one bin, holds only negatives, none tied with a positive, and holds neither the
    smallest nor the largest score of its bin. Of the rows of kept sub-bins, those
    :func:`_trimmed` keeps are returned sorted (every row of a sub-bin with a bin's
    lower key or a bin's first or last row; of the others, the rows from their
    smallest positive to their largest); the rest are counted per sub-bin.

    The rows are read twice, :data:`SPLIT_PIECE_ROWS` at a time: once to count each
    sub-bin's rows and find the positives, once to pick the rows of kept sub-bins. The
    sub-bins of consecutive pieces, across chunks, are written in place into one
    ``intp`` buffer of :data:`SPLIT_BLOCK_ROWS` (reused by :func:`_trimmed` after) and
    counted when it is full (each ``np.bincount`` makes a table of every sub-bin; a
    shuffled part arrives in small chunks, a batch of each task at a time). No array
    of every row is made: on this machine first touches of fresh memory cost more than
    the arithmetic (docs/benchmarks.md). The buffers are ``scratch``'s where given.
    """
    chunks = [packed] if isinstance(packed, np.ndarray) else [c for c in packed if c.shape[0]]
    dtype = chunks[0].dtype
    n = sum(c.shape[0] for c in chunks)
    if table_bits is None:
        table_bits = min(TABLE_BITS, n.bit_length())
    one = dtype.type(1)
    low = job.low[first:end].astype(dtype)
    base = dtype.type(min(c.min() for c in chunks) >> one)
    if base < low[0]:
        raise ValueError("rows below the lowest bin of their part")
    span = int(max(c.max() for c in chunks) >> one) - int(base) + 1
    shift = max(0, (span - 1).bit_length() - table_bits)
    size = ((span - 1) >> shift) + 1
    block = min(n, SPLIT_BLOCK_ROWS)
    scratch = scratch or Scratch()
    sub_buffer = scratch.take("sub-bins", block, np.intp)
    flag_buffer = scratch.take("flags", min(block, SPLIT_PIECE_ROWS), bool)

    def sub_bins(rows: np.ndarray, at: int = 0) -> np.ndarray:
        # (key·2 + y − base·2) >> (shift + 1) is (key − base) >> shift: no copy of the keys
        sub = sub_buffer[at : at + rows.shape[0]]
        np.subtract(rows, base << one, out=sub, casting="unsafe")
        np.right_shift(sub, shift + 1, out=sub)
        return sub

    tables: list[np.ndarray] = []  # the counts so far, then the last block's

    def count(rows: int) -> None:
        tables.append(np.bincount(sub_buffer[:rows], minlength=size))
        if len(tables) == 2:
            np.add(tables[0], tables.pop(), out=tables[0])

    held = 0  # rows whose sub-bins are in the buffer
    positive_rows = []
    for rows in _blocks(chunks, min(block, SPLIT_PIECE_ROWS)):
        if held + rows.shape[0] > block:
            count(held)
            held = 0
        sub_bins(rows, held)
        held += rows.shape[0]
        label = flag_buffer[: rows.shape[0]]
        np.bitwise_and(rows, one, out=label, casting="unsafe")
        positive_rows.append(np.compress(label, rows))
    count(held)
    counts = tables[0]
    positives = np.concatenate(positive_rows) if len(positive_rows) > 1 else positive_rows[0]
    del positive_rows
    positive_sub = (positives - (base << one)).astype(np.intp) >> (shift + 1)
    # bins above the largest key are empty: their edges go to one slot past the table
    # and edges below the smallest row to sub-bin 0
    edge = (np.maximum(low, base) - base) >> dtype.type(shift)
    edge = np.minimum(edge.astype(np.intp), size)
    whole = np.zeros(size + 1, bool)  # kept sub-bins whose every row is sorted
    whole[edge] = True
    filled = np.flatnonzero(counts)
    after_edge = np.searchsorted(filled, edge, side="right")
    whole[filled[np.minimum(after_edge, filled.shape[0] - 1)]] = True
    before_next = np.searchsorted(filled, np.r_[edge[1:], size]) - 1
    whole[filled[np.maximum(before_next, 0)]] = True
    del filled
    kept = whole.copy()
    kept[positive_sub] = True
    picked = []
    for rows in _blocks(chunks, min(block, SPLIT_PIECE_ROWS)):
        selected = flag_buffer[: rows.shape[0]]
        np.take(kept, sub_bins(rows), out=selected, mode="clip")
        picked.append(np.compress(selected, rows))
    rows = np.concatenate(picked) if len(picked) > 1 else picked[0]
    del picked
    negatives = counts  # every sub-bin holding a positive is kept: the rest hold negatives
    negatives[kept[:size]] = 0
    sorted_rows = _trimmed(rows, positives, positive_sub, whole, negatives, base, shift, sub_buffer)
    sorted_rows.sort()
    through = np.cumsum(negatives, out=negatives)  # in place: no second table
    return sorted_rows, NegativeGaps(through, int(base), shift)


def _carve(scratch: np.ndarray, shapes: Sequence[tuple[int, np.dtype]]) -> list[np.ndarray]:
    """Arrays of the given lengths and dtypes laid one after another in ``scratch``'s
    bytes (8-byte aligned), or fresh ones where they do not fit: the reducers reuse
    memory they have touched, since first touches of fresh memory cost more than the
    arithmetic on them (docs/benchmarks.md)."""
    raw = scratch.view(np.uint8)
    out, at = [], 0
    for length, dtype in shapes:
        size = length * np.dtype(dtype).itemsize
        if at + size > raw.shape[0]:
            return [np.empty(n, d) for n, d in shapes]
        out.append(raw[at : at + size].view(dtype))
        at += -(-size // 8) * 8
    return out


def _trimmed(
    rows: np.ndarray,
    positives: np.ndarray,
    positive_sub: np.ndarray,
    whole: np.ndarray,
    negatives: np.ndarray,
    base: int,
    shift: int,
    scratch: np.ndarray,
) -> np.ndarray:
    """Of the rows of kept sub-bins (:func:`split_rows`), those to sort: every row of
    the ``whole`` sub-bins, and of the others (they hold a positive and lie inside one
    bin) the rows from their smallest positive's key to their largest's, ties
    included. The negatives below that range are below every positive of their
    sub-bin: they are counted in ``negatives`` at it; those above it at the next
    sub-bin, so that the counted negatives through a kept sub-bin are those below its
    sorted rows. The last sub-bin is whole (it holds the largest row). ``scratch``:
    memory free to reuse (:func:`_carve`)."""
    dtype = rows.dtype
    top = np.iinfo(dtype).max
    tables = whole.shape[0]
    bounds, sub, got = _carve(
        scratch, [(2 * tables, dtype), (rows.shape[0], np.intp), (2 * rows.shape[0], dtype)]
    )
    # per sub-bin, the range of packed rows sorted, side by side (one cache line per
    # row's look-up): a negative tied with a positive of key k is packed 2k, the
    # positive 2k + 1
    bounds = bounds.reshape(tables, 2)
    low, high = bounds[:, 0], bounds[:, 1]
    low[positive_sub] = top
    high[positive_sub] = 0
    np.minimum.at(low, positive_sub, positives - dtype.type(1))
    np.maximum.at(high, positive_sub, positives)
    low[whole] = 0
    high[whole] = top
    np.subtract(rows, dtype.type(base << 1), out=sub, casting="unsafe")
    np.right_shift(sub, shift + 1, out=sub)
    got = np.take(bounds, sub, axis=0, out=got.reshape(rows.shape[0], 2), mode="clip")
    below = rows < got[:, 0]
    above = rows > got[:, 1]
    np.add.at(negatives, np.compress(below, sub), 1)
    np.add.at(negatives, np.compress(above, sub) + 1, 1)
    np.logical_or(below, above, out=below)
    return np.compress(np.logical_not(below, out=below), rows)


#: A part's rows are counted per value in one table (:func:`value_counts`) when it has
#: at most this many slots (two per distinct key the part's keys span): 64 MB of int64
#: counts. Larger tables cost a cache miss per row, and the part is sorted instead.
DENSE_SLOTS = 1 << 23


@dataclass(frozen=True)
class ValueCounts:
    """A part's rows counted per distinct score (:func:`value_counts`): ``keys`` (its
    values' keys, ascending), ``pos`` and ``neg`` (int64 rows of each)."""

    keys: np.ndarray
    pos: np.ndarray
    neg: np.ndarray


#: Rows :func:`value_counts` moves the label of at a time (its buffer stays in cache).
BLOCK_ROWS = 1 << 16


def _trailing_zeros(value: int) -> int:
    """The trailing zero bits of ``value`` (0 for 0)."""
    return (value & -value).bit_length() - 1 if value else 0


def value_counts(
    chunks: Sequence[np.ndarray], low: np.ndarray, scratch: Scratch | None = None
) -> ValueCounts | None:
    """The unweighted packed rows ``chunks`` (unsorted, at least one row) of bins whose
    lower keys are ``low`` (the first at or below every row) counted per distinct key
    without a sort, or None where the table would have more than :data:`DENSE_SLOTS`
    slots.

    Keys are divided by the largest power of two ``2^t`` dividing them all (float32
    values stored as float64 have 29 zero low bits: they span as many values as their
    float32 keys) and taken relative to the smallest, ``r = key / 2^t − base``; every
    row's slot ``r · 2 + y`` is counted in one ``np.bincount`` of ``2 · span`` slots
    (``span``: the largest ``r`` + 1), and the non-empty values read off in key order.
    The rows' slots are written into one ``intp`` buffer in place (fresh arrays of every
    row cost more in page faults than the arithmetic, docs/benchmarks.md): ``scratch``'s
    where given.
    """
    chunks = [c for c in chunks if c.shape[0]]
    dtype = chunks[0].dtype
    smallest = int(min(c.min() for c in chunks)) >> 1
    largest = int(max(c.max() for c in chunks)) >> 1
    if int(np.asarray(low)[0]) > smallest:
        raise ValueError("rows below the lowest bin of their part")
    t = 0
    if 2 * (largest - smallest + 1) > DENSE_SLOTS:
        if dtype != np.uint64:
            return None
        # the span shrinks with t, and t is at most that of a few rows: too wide at
        # theirs, too wide at every row's
        few = _trailing_zeros(int(np.bitwise_or.reduce(chunks[0][:BLOCK_ROWS])) >> 1)
        if 2 * ((largest >> few) - (smallest >> few) + 1) > DENSE_SLOTS:
            return None
        ored = 0
        for c in chunks:
            ored |= int(np.bitwise_or.reduce(c))
        t = _trailing_zeros(ored >> 1)  # every key's last t bits are 0
    base = smallest >> t
    span = (largest >> t) - base + 1
    if 2 * span > DENSE_SLOTS:
        return None
    origin = dtype.type(base << (t + 1))  # the packed row of r = 0, y = 0
    slot = (scratch or Scratch()).take("slots", sum(c.shape[0] for c in chunks), np.intp)
    y = np.empty(min(BLOCK_ROWS, slot.shape[0]), np.intp)
    at = 0
    for c in chunks:
        part = slot[at : at + c.shape[0]]
        np.subtract(c, origin, out=part, casting="unsafe")  # (r << t) · 2 + y
        for i in range(0, part.shape[0] if t else 0, BLOCK_ROWS):  # r · 2 + y
            block = part[i : i + BLOCK_ROWS]
            label = y[: block.shape[0]]
            np.bitwise_and(block, 1, out=label)
            block >>= t
            block |= label
        at += c.shape[0]
    counts = np.bincount(slot, minlength=2 * span).reshape(-1, 2)
    del slot
    r = np.flatnonzero(counts[:, 0] + counts[:, 1])
    keys = (r + base).astype(dtype) << dtype.type(t)
    return ValueCounts(keys, counts[r, 1], counts[r, 0])


def value_sums(
    counts: ValueCounts,
    job: SortJob,
    first: int,
    end: int,
    above: tuple[float, float] | None = None,
) -> BinSums:
    """:class:`BinSums` of bins ``first … end − 1`` from their rows counted per value
    (:func:`value_counts`): per bin ``b`` and value ``v`` of it, ``pairs_b = Σ_v p_v ·
    (n_{<v} + ½ n_v)`` and ``ap_b = Σ_v p_v · tp_v / (tp_v + fp_v)`` over ``p_v > 0``
    (module docstring). The same sums as :func:`counted_sums` gives from the sorted
    rows, bit for bit: ``pairs_b`` adds halves of integers below 2^53 (exact in any
    order) and ``ap_b`` the same ratio once per positive, in row order. ``above``: as
    for :func:`counted_sums`.
    """
    keys, p, q = counts.keys, counts.pos, counts.neg
    m = end - first
    values = keys.shape[0]
    bounds = np.r_[np.searchsorted(keys, job.low[first:end].astype(keys.dtype)), values]
    cp = np.zeros(values + 1, np.int64)
    np.cumsum(p, out=cp[1:])
    cq = np.zeros(values + 1, np.int64)
    np.cumsum(q, out=cq[1:])
    pos_before = cp[bounds]
    neg_before = cq[bounds]
    bin_p_rows, bin_n_rows = np.diff(pos_before), np.diff(neg_before)
    bin_p, bin_n = bin_p_rows.astype(np.float64), bin_n_rows.astype(np.float64)
    rows = bin_p_rows + bin_n_rows
    seen = rows > 0
    start, stop = bounds[:-1], bounds[1:]
    first_key = keys[np.minimum(start, values - 1)]
    last_key = keys[np.maximum(stop - 1, 0)]
    shape = {
        "bin": np.arange(first, end, dtype=np.int64),
        "rows": rows,
        "single": seen & (first_key == last_key),
        "low": np.where(seen, key_scores(first_key, keys.dtype == np.uint32), np.nan),
        "high": np.where(seen, key_scores(last_key, keys.dtype == np.uint32), np.nan),
    }
    gained = np.flatnonzero(p)  # values holding a positive, ascending
    b = np.searchsorted(bounds, gained, side="right") - 1  # the bin of each
    pg = p[gained].astype(np.float64)
    pos_below_in_bin = (cp[gained] - pos_before[b]).astype(np.float64)
    neg_below_in_bin = (cq[gained] - neg_before[b]).astype(np.float64)
    pairs = np.bincount(b, weights=pg * (neg_below_in_bin + 0.5 * q[gained]), minlength=m)
    precision = _precision(
        job, first, end, above, bin_p, bin_n, b, pos_below_in_bin, neg_below_in_bin
    )
    # one term per positive, in row order, as counted_sums adds them: the same bits
    ap = np.bincount(np.repeat(b, p[gained]), np.repeat(precision, p[gained]), minlength=m)
    return BinSums(pos=bin_p, neg=bin_n, pairs=pairs, ap=ap, **shape)


def unweighted_sums(
    chunks: Sequence[np.ndarray],
    job: SortJob,
    first: int,
    end: int,
    above: tuple[float, float] | None = None,
    scratch: Scratch | None = None,
) -> BinSums:
    """:class:`BinSums` of bins ``first … end − 1`` from their unweighted packed rows
    (unsorted ``chunks``): :func:`value_counts`, then :func:`value_sums` (else
    :func:`split_rows`, then :func:`counted_sums`), in ``scratch``'s buffers where
    given."""
    if sum(c.shape[0] for c in chunks) == 0:
        empty = np.zeros(0, np.uint32 if job.narrow else np.uint64)
        return counted_sums(empty, job, first, end, above=above)
    counts = value_counts(chunks, job.low[first:end], scratch)
    if counts is None:
        kept, gaps = split_rows(chunks, job, first, end, scratch=scratch)
        return counted_sums(kept, job, first, end, gaps, above)
    return value_sums(counts, job, first, end, above)


def _bin_rows(keys: np.ndarray, job: SortJob, first: int, end: int) -> np.ndarray:
    """Where each bin ``first … end − 1`` starts in the sorted ``keys``, and the end."""
    low = job.low[first:end].astype(keys.dtype)
    start = np.searchsorted(keys, low)
    if start.size and start[0] != 0:
        raise ValueError("rows below the lowest bin of their part")
    return np.r_[start, keys.shape[0]]


def _shape(
    keys: np.ndarray, bounds: np.ndarray, job: SortJob, first: int, end: int
) -> dict[str, np.ndarray]:
    """Per bin: its index, rows, single-valued, smallest and largest score (NaN if empty)."""
    start, stop = bounds[:-1], bounds[1:]
    rows = (stop - start).astype(np.int64)
    seen = rows > 0
    first_key = keys[np.minimum(start, max(keys.shape[0] - 1, 0))] if keys.size else start
    last_key = keys[np.maximum(stop - 1, 0)] if keys.size else start
    low = np.where(seen, key_scores(first_key, job.narrow), np.nan) if keys.size else start * 0.0
    high = np.where(seen, key_scores(last_key, job.narrow), np.nan) if keys.size else start * 0.0
    return {
        "bin": np.arange(first, end, dtype=np.int64),
        "rows": rows,
        "single": seen & (first_key == last_key),
        "low": low,
        "high": high,
    }


def _run_starts(keys: np.ndarray) -> np.ndarray:
    """For sorted ``keys``, the index where each one's run of equal keys starts."""
    n = keys.shape[0]
    starts = np.zeros(n, np.intp)
    if n > 1:
        np.not_equal(keys[1:], keys[:-1], out=starts[1:], casting="unsafe")
        np.multiply(starts, np.arange(n, dtype=np.intp), out=starts)
        np.maximum.accumulate(starts, out=starts)
    return starts


def _precision(
    job: SortJob,
    first: int,
    end: int,
    above: tuple[float, float] | None,
    bin_p: np.ndarray,
    bin_n: np.ndarray,
    b: np.ndarray,
    pos_below_in_bin: np.ndarray,
    neg_below_in_bin: np.ndarray,
) -> np.ndarray:
    """``tp / (tp + fp)`` at the scores of positives of bins ``b`` (indices into bins
    ``first … end − 1``, whose positives and negatives are ``bin_p``, ``bin_n``) with
    ``pos_below_in_bin`` positives and ``neg_below_in_bin`` negatives of their bin below
    them: ``tp`` the positives at or above, ``fp`` the negatives at or above, the bins
    above included (``job``'s ``tp_above`` and ``fp_above``, or from ``above``, the
    positives and negatives above bin ``end − 1``: :func:`counted_sums`)."""
    if above is None:
        tp_above, fp_above = job.tp_above[first:end], job.fp_above[first:end]
    else:  # integers in float64: the same values as the driver's sums over every bin
        tp_above = above[0] + (np.cumsum(bin_p[::-1]) - bin_p[::-1])[::-1]
        fp_above = above[1] + (np.cumsum(bin_n[::-1]) - bin_n[::-1])[::-1]
    tp = tp_above[b] + bin_p[b] - pos_below_in_bin
    fp = fp_above[b] + bin_n[b] - neg_below_in_bin
    return tp / (tp + fp)


def counted_sums(
    packed: np.ndarray,
    job: SortJob,
    first: int,
    end: int,
    gaps: NegativeGaps | None = None,
    above: tuple[float, float] | None = None,
) -> BinSums:
    """:class:`BinSums` of sorted unweighted ``packed`` rows of bins ``first … end − 1``,
    plus the negatives ``gaps`` counts without their rows (:func:`split_rows`).

    Works on the positive rows: at equal scores negatives sort first, so the row where
    a positive's run of equal keys starts is the first row of its score, and the first
    positive of that run the first positive of it (both found in linear passes over
    the sorted rows, :func:`_run_starts`); the negatives below it, tied with it and
    above it in its bin follow from those indices, the bin's first row and the counted
    negatives below the positive's key and below the bin's lower edge.

    ``above``: the positives and negatives above bin ``end − 1``, when ``job`` does not
    hold ``tp_above`` and ``fp_above`` (a shipped part, :func:`part_sums`): those of
    each bin then follow from it and the bins' own counts.
    """
    one = packed.dtype.type(1)
    keys = packed >> one
    bounds = _bin_rows(keys, job, first, end)
    shape = _shape(keys, bounds, job, first, end)
    positives = np.flatnonzero(packed & one)
    pos_before = np.searchsorted(positives, bounds)  # positives before each bin boundary
    bin_p = np.diff(pos_before).astype(np.float64)
    neg_before = (bounds - pos_before).astype(np.int64)  # negatives before each boundary
    kp = keys[positives]
    # first row of each positive's score (rows are sorted: where a run of equal keys
    # starts), and the first positive of it, by index among the positives
    score_first = _run_starts(keys)[positives]
    first_positive = _run_starts(kp)
    pos_below = first_positive  # positives of lower scores
    neg_below = (score_first - pos_below).astype(np.int64)  # sorted negatives below
    if gaps is not None:  # and the counted ones
        neg_before += gaps.below_edges(job.low[first:end].astype(keys.dtype))
        neg_below += gaps.below(kp)
    bin_n = np.diff(neg_before).astype(np.float64)
    shape["rows"] = np.diff(pos_before) + np.diff(neg_before)
    # negatives tied with each positive: at equal scores they sort first
    tied = (positives[first_positive] - score_first).astype(np.float64)
    m = end - first
    b = np.repeat(np.arange(m), np.diff(pos_before))  # bin of each positive (in order)
    pos_below_in_bin = (pos_below - pos_before[b]).astype(np.float64)
    neg_below_in_bin = (neg_below - neg_before[b]).astype(np.float64)
    pairs = np.bincount(b, weights=neg_below_in_bin + 0.5 * tied, minlength=m)
    precision = _precision(
        job, first, end, above, bin_p, bin_n, b, pos_below_in_bin, neg_below_in_bin
    )
    ap = np.bincount(b, weights=precision, minlength=m)
    return BinSums(pos=bin_p, neg=bin_n, pairs=pairs, ap=ap, **shape)


@dataclass(frozen=True)
class Above:
    """What one map task ships to a part besides its rows: its positives and negatives
    in the parts above (of higher scores)."""

    pos: int
    neg: int


def part_sums(
    packed: np.ndarray | Sequence[np.ndarray],
    buckets: int,
    start: int,
    end: int,
    above: Above,
    narrow: bool,
    scratch: Scratch | None = None,
) -> BinSums:
    """:class:`BinSums` of the pass-1 buckets ``start … end − 1`` (of ``buckets``) from
    all their valid rows, unweighted and unsorted (``packed``: one array, or the chunks
    a reducer received), given the positives and negatives ``above`` bucket ``end − 1``;
    only buckets holding a row, ``bin`` the bucket. The sums of each bucket are those
    :func:`resolve` gives it in a sort pass over every bucket (``tp_above`` and
    ``fp_above`` follow from ``above``). A float64 column's chunks may mix 4-byte keys
    (batches of float32 values) with 8-byte ones (:func:`one_width`). ``scratch``: the
    reducer's reused buffers (:class:`Scratch`)."""
    chunks, narrow = one_width([packed] if isinstance(packed, np.ndarray) else packed, narrow)
    low = low_keys(np.arange(start, end, dtype=np.float64) / buckets, narrow)
    zero = np.zeros(end - start)
    job = SortJob(low, zero, zero, np.array([0, end - start]), narrow, False)
    if sum(c.shape[0] for c in chunks) == 0:
        empty = np.zeros(0, np.uint32 if narrow else np.uint64)
        sums = counted_sums(empty, job, 0, end - start)
    else:
        totals = (float(above.pos), float(above.neg))
        sums = unweighted_sums(chunks, job, 0, end - start, totals, scratch)
    seen = sums.rows > 0
    fields = {f: getattr(sums, f)[seen] for f in BinSums.__dataclass_fields__}
    fields["bin"] = fields["bin"] + start
    return BinSums(**fields)


def weighted_sums(packed: np.ndarray, w: np.ndarray, job: SortJob, first: int, end: int) -> BinSums:
    """:class:`BinSums` of sorted weighted ``packed`` rows (weights ``w``) of bins
    ``first … end − 1``: per distinct score ``v`` its weights ``p_v``, ``n_v``."""
    one = packed.dtype.type(1)
    keys = packed >> one
    bounds = _bin_rows(keys, job, first, end)
    shape = _shape(keys, bounds, job, first, end)
    m = end - first
    n = keys.shape[0]
    if n == 0:
        zero = np.zeros(m)
        return BinSums(pos=zero, neg=zero, pairs=zero, ap=zero, **shape)
    positive = (packed & one).astype(bool)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    wp = np.where(positive, w, 0.0)
    p = np.add.reduceat(wp, starts)
    q = np.add.reduceat(w - wp, starts)
    b = np.searchsorted(bounds, starts, side="right") - 1  # bin of each value
    cp, cq = np.cumsum(p) - p, np.cumsum(q) - q  # below each value, in the part
    value_start = np.searchsorted(starts, bounds[:-1])  # first value of each bin
    at = np.minimum(value_start, starts.shape[0] - 1)
    p_below, q_below = cp - cp[at][b], cq - cq[at][b]
    bin_p = np.bincount(b, weights=p, minlength=m)
    bin_q = np.bincount(b, weights=q, minlength=m)
    pairs = np.bincount(b, weights=p * (q_below + 0.5 * q), minlength=m)
    tp = job.tp_above[first:end][b] + bin_p[b] - p_below
    fp = job.fp_above[first:end][b] + bin_q[b] - q_below
    gained = p > 0
    precision = np.zeros(p.shape[0])
    precision[gained] = tp[gained] / (tp[gained] + fp[gained])
    ap = np.bincount(b, weights=p * precision, minlength=m)
    return BinSums(pos=bin_p, neg=bin_q, pairs=pairs, ap=ap, **shape)
