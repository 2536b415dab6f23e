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
        at = node - self.first
        part = np.full(node.shape[0], -1, np.int64)
        known = (at >= 0) & (at < self.part_of.shape[0])
        part[known] = self.part_of[at[known]]
        return part


class PartRows:
    """One task's rows of the sort pass, sorted per batch and grouped by part."""

    def __init__(self, layout: SortLayout) -> None:
        self.layout = layout
        self.runs: dict[int, list[np.ndarray]] = {}
        self.weights: dict[int, list[np.ndarray]] = {}

    def add(
        self, s: np.ndarray, positive: np.ndarray, w: np.ndarray | None, node: np.ndarray
    ) -> None:
        """Add rows (score, label, weight or None, node id); rows of bins not sorted
        (part −1) are dropped."""
        part = self.layout.parts_of(node)
        keep = part >= 0
        if not keep.all():
            s, positive, part = s[keep], positive[keep], part[keep]
            w = None if w is None else w[keep]
        if s.shape[0] == 0:
            return
        packed = pack(score_keys(s, self.layout.narrow), positive)
        if w is None:
            packed.sort()
        else:
            order = np.argsort(packed)
            packed, w = packed[order], w[order]
        # parts are monotone in the score, so the sorted rows are grouped by part
        sizes = np.bincount(part, minlength=self.layout.parts)
        ends = np.cumsum(sizes)
        for k in np.flatnonzero(sizes):
            start = int(ends[k] - sizes[k])
            self.runs.setdefault(int(k), []).append(packed[start : ends[k]])
            if w is not None:
                self.weights.setdefault(int(k), []).append(w[start : ends[k]])

    def chunks(self) -> Iterator[tuple[int, tuple[np.ndarray, np.ndarray | None]]]:
        """``(part, (packed, weights or None))`` per part with rows."""
        for k, runs in self.runs.items():
            w = np.concatenate(self.weights[k]) if k in self.weights else None
            yield k, (np.concatenate(runs), w)


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
    (weight sums when weighted), distinct values, smallest and largest score,
    ``pairs`` and ``ap`` (module docstring)."""

    bin: np.ndarray
    rows: np.ndarray
    pos: np.ndarray
    neg: np.ndarray
    values: np.ndarray
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
    if job.weighted:
        w = np.concatenate([c[1] for c in chunks]) if chunks else np.zeros(0)  # type: ignore[misc]
        order = np.argsort(packed, kind="stable")
        packed, w = packed[order], w[order]
    else:
        packed = np.sort(packed)
        w = None
    return bin_sums(packed, w, job, first, end)


def bin_sums(
    packed: np.ndarray, w: np.ndarray | None, job: SortJob, first: int, end: int
) -> BinSums:
    """:class:`BinSums` of sorted ``packed`` rows (weights ``w`` or None) of bins
    ``first … end − 1``."""
    one = packed.dtype.type(1)
    keys = packed >> one
    positive = (packed & one).astype(bool)
    n = keys.shape[0]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if n else np.zeros(0, np.int64)
    rows = np.diff(np.r_[starts, n]).astype(np.int64)
    if w is None:
        p = np.add.reduceat(positive.astype(np.int64), starts) if n else np.zeros(0, np.int64)
        q = rows - p
        p, q = p.astype(np.float64), q.astype(np.float64)
    else:
        wp = np.where(positive, w, 0.0)
        p = np.add.reduceat(wp, starts) if n else np.zeros(0)
        q = np.add.reduceat(w - wp, starts) if n else np.zeros(0)
    value_keys = keys[starts]
    local = job.low[first:end]
    b = np.searchsorted(local, value_keys, side="right") - 1  # bin of each value, 0-based
    if b.size and (b[0] < 0):
        raise ValueError("a row below the lowest bin of its part")
    m = end - first
    # per-bin cumulative sums below each value (exclusive), within its bin
    cp, cq = np.cumsum(p) - p, np.cumsum(q) - q
    bin_first = np.searchsorted(b, np.arange(m))  # first value of each bin (or past it)
    has = np.bincount(b, minlength=m) > 0
    at = np.minimum(bin_first, max(b.size - 1, 0))
    base_p = np.where(has, cp[at] if b.size else 0.0, 0.0)
    base_q = np.where(has, cq[at] if b.size else 0.0, 0.0)
    p_below, q_below = cp - base_p[b], cq - base_q[b]
    bin_p = np.bincount(b, weights=p, minlength=m)
    bin_q = np.bincount(b, weights=q, minlength=m)
    pairs = np.bincount(b, weights=p * (q_below + 0.5 * q), minlength=m)
    tp = job.tp_above[first:end][b] + bin_p[b] - p_below
    fp = job.fp_above[first:end][b] + bin_q[b] - q_below
    gained = p > 0
    precision = np.zeros(p.shape[0])
    precision[gained] = tp[gained] / (tp[gained] + fp[gained])
    ap = np.bincount(b, weights=p * precision, minlength=m)
    scores = key_scores(value_keys, job.narrow)
    last = np.r_[bin_first[1:], b.size] - 1
    low = np.where(has, scores[at] if b.size else np.nan, np.nan)
    high = np.where(has, scores[np.maximum(last, 0)] if b.size else np.nan, np.nan)
    return BinSums(
        bin=np.arange(first, end, dtype=np.int64),
        rows=np.bincount(b, weights=rows, minlength=m).astype(np.int64),
        pos=bin_p,
        neg=bin_q,
        values=np.bincount(b, minlength=m).astype(np.int64),
        low=low,
        high=high,
        pairs=pairs,
        ap=ap,
    )
