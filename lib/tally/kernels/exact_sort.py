"""The sort pass of exact AUC (``metrics.auc: exact``) in numpy: rows of the bins that
carry error, sorted by score, give each bin's exact share of ROC AUC and average precision.

**Keys.** A score ``s`` in ``[0, 1]`` is sorted by its IEEE-754 bit pattern, which is
monotone for non-negative floats: ``key(s) = bits(s + 0.0)`` (adding ``+0.0`` turns
``−0.0`` into ``+0.0``, so the two are one value, a tie, as for scikit-learn). Scores
read from a float32 column are sorted as float32 (``narrow``: 30-bit keys, rows of
4 bytes), others as float64 (62-bit keys, 8 bytes). The label rides in the lowest
bit: ``packed = key · 2 + y``, so one ``np.sort`` of unsigned integers orders the rows
by score, negatives before positives at equal scores (weighted rows: ``argsort``, and
the weights follow).

**Rows to reducers.** Every row of a chosen bin goes to one reducer (a *part*): parts
hold contiguous runs of bins in score order (:class:`SortLayout`: dense table from a
bin's node id to its part). A task sorts the rows of each batch and splits them at the
part boundaries (parts are monotone in the score); :class:`PartRows` gathers them per
part; a reducer concatenates its runs and sorts them again (:func:`resolve`).

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


class PartRows:
    """One task's rows of the sort pass, sorted per batch and grouped by part."""

    def __init__(self, layout: SortLayout) -> None:
        self.layout = layout
        self.runs: list[tuple[int, np.ndarray, np.ndarray | None]] = []

    def add(
        self, s: np.ndarray, positive: np.ndarray, w: np.ndarray | None, node: np.ndarray
    ) -> None:
        """Add rows (score, label, weight or None, node id); rows of bins not sorted
        (part −1) are dropped."""
        part = self.layout.parts_of(node)
        packed = pack(score_keys(s, self.layout.narrow), positive)
        # rows per part, those dropped (part −1) first
        sizes = np.bincount(part + 1, minlength=self.layout.parts + 1)
        if sizes[0]:
            keep = part >= 0
            packed = packed[keep]
            w = None if w is None else w[keep]
        if w is None:
            packed.sort()
        else:
            order = np.argsort(packed)
            packed, w = packed[order], w[order]
        # parts are monotone in the score, so the sorted rows are grouped by part
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
        packed.sort()
        return counted_sums(packed, job, first, end)
    w = np.concatenate([c[1] for c in chunks]) if chunks else np.zeros(0)  # type: ignore[misc]
    order = np.argsort(packed, kind="stable")
    return weighted_sums(packed[order], w[order], job, first, end)


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


def counted_sums(packed: np.ndarray, job: SortJob, first: int, end: int) -> BinSums:
    """:class:`BinSums` of sorted unweighted ``packed`` rows of bins ``first … end − 1``.

    Works on the positive rows: at equal scores negatives sort first, so for a positive
    with packed value ``k``, ``searchsorted(k − 1)`` is the first row of its score and
    ``searchsorted(k)`` the first positive of it; the negatives below it, tied with it
    and above it in its bin follow from those indices and the bin's first row.
    """
    one = packed.dtype.type(1)
    keys = packed >> one
    bounds = _bin_rows(keys, job, first, end)
    shape = _shape(keys, bounds, job, first, end)
    positives = np.flatnonzero(packed & one)
    pos_before = np.searchsorted(positives, bounds)  # positives before each bin boundary
    bin_p = np.diff(pos_before).astype(np.float64)
    bin_n = shape["rows"] - bin_p
    neg_before = bounds[:-1] - pos_before[:-1]
    k = packed[positives]
    score_first = np.searchsorted(packed, k - one)  # first row of the positive's score
    tied = (np.searchsorted(packed, k) - score_first).astype(np.float64)
    pos_below = np.searchsorted(positives, score_first)  # positives of lower scores
    b = np.searchsorted(bounds, positives, side="right") - 1  # bin of each positive
    m = end - first
    pos_below_in_bin = (pos_below - pos_before[b]).astype(np.float64)
    neg_below_in_bin = (score_first - pos_below - neg_before[b]).astype(np.float64)
    pairs = np.bincount(b, weights=neg_below_in_bin + 0.5 * tied, minlength=m)
    tp = job.tp_above[first:end][b] + bin_p[b] - pos_below_in_bin
    fp = job.fp_above[first:end][b] + bin_n[b] - neg_below_in_bin
    ap = np.bincount(b, weights=tp / (tp + fp), minlength=m)
    return BinSums(pos=bin_p, neg=bin_n, pairs=pairs, ap=ap, **shape)


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
