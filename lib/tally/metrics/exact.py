"""Exact ROC AUC and average precision by refining only the buckets that carry error.

The first pass counts positives ``p_b`` and negatives ``n_b`` per bucket
``b / B <= s < (b + 1) / B``. :func:`~tally.metrics.binary.roc_auc` counts every
pair sharing a bucket as a tie (½), so the bucketed AUC is within
``½ · Σ_b p_b · n_b / (P · N)`` of the exact one. Those formulas hold for *any*
ordered sequence of disjoint score ranges ("bins"), not only equal-width buckets:
this module builds such a sequence, a :class:`FlatHistogram`, fine enough that the
metrics are exact, with further passes over the rows whose memory is bounded.

**Why a bin of equal scores is exact.** Inside a bin whose scores are all equal,
every (positive, negative) pair *is* a tie, which ``roc_auc_score`` also counts as
½ (the trapezoid under a diagonal ROC step), and ``average_precision_score`` puts
one threshold at that score, exactly where :func:`~tally.metrics.binary.average_precision`
puts it. Such a bin carries no error; only bins whose scores differ can.

**Which bins need refinement.** For the AUC: a bin with positives *and* negatives
whose scores are not all equal (it contributes ``½ p_b n_b / (P N)`` to the
bound). For average precision (step-wise over distinct thresholds, as
scikit-learn's): a bin with positives whose scores are not all equal and with any
negative in it or above it. Without negatives at or above ``b``, precision is 1 at
every threshold inside ``b``, so merging them changes nothing; a bin without
positives adds no recall step. Neither criterion changes when other bins are
refined, so a bin that needs no refinement never will.

**Refinement passes.** Pass ``k >= 2`` takes the ``m`` bins to refine,
``[lo_i, hi_i]`` in score order (pass 2: the bucket ranges ``[b / B, (b + 1) / B]``;
later: the smallest and largest score seen in the bin, ``lo_i < hi_i``), and gives
each row inside one the sub-bin ``j = min(floor((s − lo_i) / (hi_i − lo_i) · R), R − 1)``
with ``R = max(2, cell_budget // m)`` (:func:`sub_bin`). Per (bin, sub-bin) it sums
positives and negatives (or weights) and keeps the smallest and largest score; each
refined bin is then replaced by its non-empty sub-bins, in order. ``j`` is
non-decreasing in ``s`` (IEEE operations round monotonically), so sub-bins are
disjoint and ordered; the smallest score gets ``j = 0`` and the largest ``j = R − 1``,
so every refinement splits a bin and the loop makes progress even on scores one ulp
apart.

**Finding a row's bin.** Every bin has a node id, unique over all passes (pass-1
bins: the bucket; sub-bin ``j`` of the ``i``-th bin refined at pass ``k``:
``offset_k + i · R + j``). A pass starts each row at its bucket and applies one
:class:`Step` per earlier refinement: an equality look-up of the node id that moves
the row to its sub-bin (when that pass split its bin) or keeps it (when not). A step
holds only the nodes on the way to a bin refined now, so rows elsewhere drop out at
their first look-up; in Spark each step is a broadcast hash join on a ``long`` key
with at most one match per row.

**Memory.** At most ``cell_budget // 2`` bins are refined per pass (when more need
it, those carrying the most AUC error, ``p_b · n_b``, go first, the others wait for a
later pass; a warning is logged), so one pass brings at most ``cell_budget`` cells to
the driver and each step table has at most ``cell_budget`` rows; the histogram holds
at most ``B + (max_passes − 1) · cell_budget`` bins. Passes stop when no bin needs
refinement, when the AUC bound is at most ``tolerance`` and no average-precision
refinement is wanted, or after ``max_passes`` passes (pass 1 included). Exactness
needs roughly one bin per distinct score where positives and negatives interleave:
with more than about ``(max_passes − 1) · cell_budget / 2`` such scores the result is
a smaller bound, not the exact value.

This module is pure numpy: :func:`refine` is the loop, given a function that runs
one pass (a reader's, :mod:`tally.spark.refine`); :func:`refine_arrays` runs it on
in-memory rows with :func:`tally.kernels.refine.walk`, the reference the readers'
passes are tested against.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tally.counts import BinaryCounts, count_binary
from tally.errors import InputError
from tally.kernels.refine import Cells, PassRunner, Step, walk
from tally.kernels.validity import invalid_reason
from tally.metrics import MetricValue
from tally.metrics.binary import average_precision, roc_auc

log = logging.getLogger(__name__)

DEFAULT_CELL_BUDGET = 1 << 20
DEFAULT_MAX_PASSES = 10


@dataclass(frozen=True)
class FlatHistogram:
    """Ordered bins of scores (ascending): the counts the exact metrics are computed from.

    ``pos`` / ``neg``: positives / negatives per bin (int64, or float64 sums of
    weights); ``single_valued``: whether every score of the bin is the same (known
    from the smallest and largest score seen; False for pass-1 buckets, whose range
    was not observed, unless they hold one row); ``low`` / ``high``: every score of
    the bin lies in ``[low, high]``; ``passes``: passes over the input it took
    (1: the bucketed histogram as is).
    """

    pos: np.ndarray
    neg: np.ndarray
    single_valued: np.ndarray
    passes: int
    low: np.ndarray
    high: np.ndarray

    @property
    def bins(self) -> int:
        return int(self.pos.shape[0])

    @property
    def auc_bound(self) -> float:
        """:func:`exact_bound`: 0 when ``roc_auc`` of these bins is exact."""
        return exact_bound(self)

    @property
    def ap_exact(self) -> bool:
        """Whether ``average_precision`` of these bins equals scikit-learn's."""
        return not bool(needs_ap_refinement(self.pos, self.neg, self.single_valued).any())


def exact_bound(flat: FlatHistogram) -> float:
    """``½ · Σ p_b · n_b / (P · N)`` over the bins whose scores are not all equal.

    The largest distance between ``roc_auc(flat.pos, flat.neg)`` and the exact AUC:
    only pairs inside a multi-valued bin may be ordered otherwise than as a tie.
    0 when every such bin is single-valued (exact), and 0 when ``P · N = 0`` (the
    AUC is then undefined).
    """
    p = flat.pos.astype(np.float64)
    n = flat.neg.astype(np.float64)
    pairs = float(p.sum()) * float(n.sum())
    if pairs == 0:
        return 0.0
    multi = ~flat.single_valued
    return 0.5 * float(np.dot(p[multi], n[multi])) / pairs


def needs_auc_refinement(pos: np.ndarray, neg: np.ndarray, single: np.ndarray) -> np.ndarray:
    """Bins with positives and negatives whose scores are not all equal."""
    return (pos > 0) & (neg > 0) & ~single


def needs_ap_refinement(pos: np.ndarray, neg: np.ndarray, single: np.ndarray) -> np.ndarray:
    """Bins with positives, not all scores equal, and a negative in or above them."""
    negatives_at_or_above = np.cumsum(neg[::-1])[::-1]
    return (pos > 0) & ~single & (negatives_at_or_above > 0)


def exact_auc_metrics(flat: FlatHistogram) -> list[MetricValue]:
    """``roc_auc``, ``roc_auc_error_bound`` (:func:`exact_bound`) and ``pr_auc`` of ``flat``.

    Drop-in replacements of the bucketed values of :func:`~tally.metrics.binary.binary_metrics`
    (same names, same undefined reasons). ``pr_auc`` equals scikit-learn's
    ``average_precision_score`` when :attr:`FlatHistogram.ap_exact`.
    """
    auc, bucketed_bound = roc_auc(flat.pos, flat.neg)
    bound = bucketed_bound if auc.value is None else MetricValue(
        "roc_auc_error_bound", exact_bound(flat)
    )
    return [auc, bound, average_precision(flat.pos, flat.neg)]


@dataclass(frozen=True)
class _Split:
    """The bins refined at one pass: ids, ranges, and where their children's ids start."""

    parent: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    resolution: int
    offset: int

    def steps_for(self, needed: np.ndarray) -> Step:
        keep = np.isin(self.parent, needed)
        index = np.flatnonzero(keep)
        return Step(
            parent=self.parent[keep],
            split=np.ones(index.size, bool),
            lo=self.lo[keep],
            hi=self.hi[keep],
            base=self.offset + index.astype(np.int64) * self.resolution,
            resolution=self.resolution,
        )


def first_pass(counts: BinaryCounts) -> FlatHistogram:
    """The bucketed histogram of pass 1 as a :class:`FlatHistogram` (nothing refined)."""
    buckets = counts.buckets
    edges = np.arange(buckets + 1, dtype=np.float64) / buckets
    single = np.zeros(buckets, bool)
    if not counts.weighted:
        single = (counts.pos + counts.neg) == 1
    return FlatHistogram(
        pos=counts.pos.copy(),
        neg=counts.neg.copy(),
        single_valued=single,
        passes=1,
        low=edges[:-1].copy(),
        high=edges[1:].copy(),
    )


@dataclass(frozen=True)
class RefineOptions:
    """When refinement passes stop and how much one may hold (``metrics.auc_*`` in the config).

    Passes stop when the AUC bound is 0 and (``refine_ap``) average precision is exact,
    when the bound is at most ``tolerance`` and ``refine_ap`` is False, or after
    ``max_passes`` passes over the input, pass 1 included (1: nothing is read, the
    bucketed histogram is returned). At most ``cell_budget`` cells reach the driver
    per pass.
    """

    tolerance: float = 0.0
    refine_ap: bool = True
    max_passes: int = DEFAULT_MAX_PASSES
    cell_budget: int = DEFAULT_CELL_BUDGET

    def __post_init__(self) -> None:
        if self.max_passes < 1:
            raise ValueError(f"max_passes must be at least 1, got {self.max_passes}")
        if self.cell_budget < 2:
            raise ValueError(f"cell_budget must be at least 2, got {self.cell_budget}")
        if self.tolerance < 0:
            raise ValueError(f"tolerance must be at least 0, got {self.tolerance}")


def refine(
    counts: BinaryCounts,
    run_pass: PassRunner,
    options: RefineOptions = RefineOptions(),
    label: str = "exact auc",
) -> FlatHistogram:
    """Refine the bins of pass 1 (``counts``) with passes of ``run_pass`` (module docstring).

    Raises :class:`~tally.errors.InputError` when a pass does not find the rows the
    previous one counted (the input changed between passes: it must read the same
    rows each time).
    """
    bins = _Bins(counts)
    while bins.passes < options.max_passes:
        chosen = bins_to_refine(bins.histogram(), options, label)
        if chosen.size == 0:
            break
        split = bins.split(chosen, options.cell_budget)
        cells = run_pass(bins.steps()).sorted()
        bins.replace(chosen, split, cells, label)
        after = bins.histogram()
        log.info(
            "%s: pass %d refined %d bins (R=%d) into %d, %d rows matched, AUC bound %.3g%s",
            label, bins.passes, chosen.size, split.resolution, cells.node.shape[0],
            int(cells.rows.sum()), exact_bound(after),
            f", average precision {'exact' if after.ap_exact else 'not yet exact'}"
            if options.refine_ap else "",
        )
    return bins.histogram()


def bins_to_refine(flat: FlatHistogram, options: RefineOptions, label: str) -> np.ndarray:
    """Indices of the bins of ``flat`` the next pass refines; empty when passes stop.

    At most ``cell_budget // 2``: when more need it, those carrying the most AUC error
    (``p_b · n_b``) go first and the others wait for a later pass (a warning says so).
    """
    pos, neg, single = flat.pos, flat.neg, flat.single_valued
    want = needs_auc_refinement(pos, neg, single)
    ap_want = needs_ap_refinement(pos, neg, single) if options.refine_ap else np.zeros_like(want)
    if exact_bound(flat) <= options.tolerance and not ap_want.any():
        return np.zeros(0, np.int64)
    chosen = np.flatnonzero(want | ap_want)
    limit = options.cell_budget // 2
    if chosen.size > limit:
        log.warning(
            "%s: %d bins need refinement, refining the %d carrying the most AUC error "
            "this pass (cell_budget %d)",
            label, chosen.size, limit, options.cell_budget,
        )
        p, n = pos[chosen].astype(np.float64), neg[chosen].astype(np.float64)
        chosen = np.sort(chosen[np.lexsort((-p, -p * n))[:limit]])
    return chosen


class _Bins:
    """The bins so far, in score order, and every node id ever made, across passes."""

    def __init__(self, counts: BinaryCounts) -> None:
        flat = first_pass(counts)
        self.pos, self.neg, self.single = flat.pos, flat.neg, flat.single_valued
        self.low, self.high = flat.low, flat.high
        self.node = np.arange(counts.buckets, dtype=np.int64)  # unique over all passes
        # Every node ever made (ids ascending): its parent and the pass that made it.
        self.known_id = self.node.copy()
        self.known_parent = np.full(counts.buckets, -1, np.int64)
        self.known_pass = np.ones(counts.buckets, np.int64)
        self.splits: dict[int, _Split] = {}
        self.next_id = counts.buckets
        self.passes = 1

    def histogram(self) -> FlatHistogram:
        return FlatHistogram(self.pos, self.neg, self.single, self.passes, self.low, self.high)

    def split(self, chosen: np.ndarray, cell_budget: int) -> _Split:
        """Start the next pass: the bins ``chosen`` get ``R = max(2, budget // m)`` ids each."""
        self.passes += 1
        resolution = max(2, cell_budget // chosen.size)
        split = _Split(
            self.node[chosen], self.low[chosen], self.high[chosen], resolution, self.next_id
        )
        self.splits[self.passes] = split
        self.next_id += chosen.size * resolution
        return split

    def steps(self) -> list[Step]:
        """The look-ups of the current pass (:func:`_steps`)."""
        return _steps(self.splits, self.passes, self.known_id, self.known_parent, self.known_pass)

    def replace(self, chosen: np.ndarray, split: _Split, cells: Cells, label: str) -> None:
        """Put the sub-bins ``cells`` of the refined bins ``chosen`` in their place."""
        interval, sub = np.divmod(cells.node - split.offset, split.resolution)
        _check_cells(cells, interval, split, self.pos[chosen], self.neg[chosen], label)
        # Every bin keeps its place, a refined bin gives way to its sub-bins.
        kept = np.ones(self.pos.shape[0], bool)
        kept[chosen] = False
        where = np.concatenate([np.flatnonzero(kept), chosen[interval]])
        within = np.concatenate([np.full(int(kept.sum()), -1, np.int64), sub])
        order = np.lexsort((within, where))
        self.pos = _splice(self.pos, cells.pos, kept, order)
        self.neg = _splice(self.neg, cells.neg, kept, order)
        self.low = _splice(self.low, cells.low, kept, order)
        self.high = _splice(self.high, cells.high, kept, order)
        self.single = _splice(self.single, cells.low == cells.high, kept, order)
        self.node = _splice(self.node, cells.node, kept, order)
        self.known_id = np.concatenate([self.known_id, cells.node])
        self.known_parent = np.concatenate([self.known_parent, split.parent[interval]])
        made = np.full(cells.node.shape[0], self.passes)
        self.known_pass = np.concatenate([self.known_pass, made])


def _splice(old: np.ndarray, new: np.ndarray, kept: np.ndarray, order: np.ndarray) -> np.ndarray:
    return np.concatenate([old[kept], new.astype(old.dtype, copy=False)])[order]


def _steps(
    splits: dict[int, _Split],
    last: int,
    known_id: np.ndarray,
    known_parent: np.ndarray,
    known_pass: np.ndarray,
) -> list[Step]:
    """The look-ups of pass ``last``: walk each row from its bucket to the bin refined now.

    Working back from the bins refined at pass ``last``: at pass ``k`` a bin on the
    way was either made by the split of pass ``k`` (the step splits its parent) or
    is older (the step passes it through). Only nodes on the way to a refined bin
    are in a step, so every other row drops out at its first look-up.
    """
    steps = [splits[last].steps_for(splits[last].parent)]
    on_way = np.unique(splits[last].parent)  # leaf nodes after pass k - 1, for k = last
    for k in range(last - 1, 1, -1):
        at = np.searchsorted(known_id, on_way)
        made_now = known_pass[at] == k
        through = on_way[~made_now]
        parents = np.unique(known_parent[at[made_now]])
        split = splits[k].steps_for(parents)
        steps.append(
            Step(
                parent=np.concatenate([split.parent, through]),
                split=np.concatenate([split.split, np.zeros(through.size, bool)]),
                lo=np.concatenate([split.lo, np.zeros(through.size)]),
                hi=np.concatenate([split.hi, np.ones(through.size)]),
                base=np.concatenate([split.base, through]),
                resolution=split.resolution,
            )
        )
        on_way = np.unique(np.concatenate([parents, through]))
    return steps[::-1]


def _check_cells(
    cells: Cells, interval: np.ndarray, split: _Split, pos: np.ndarray, neg: np.ndarray, label: str
) -> None:
    """Each refined bin's sub-bins must hold exactly its rows: else the input changed."""
    m = split.parent.shape[0]
    got_pos = np.zeros(m, np.float64)
    got_neg = np.zeros(m, np.float64)
    inside = bool(np.all((interval >= 0) & (interval < m)))
    if inside:
        np.add.at(got_pos, interval, cells.pos.astype(np.float64))
        np.add.at(got_neg, interval, cells.neg.astype(np.float64))
        inside = bool(
            np.all(cells.low >= split.lo[interval]) and np.all(cells.high <= split.hi[interval])
        )
    if pos.dtype.kind == "f":  # sums of weights, added in another order (pass 1: w − wy)
        slack = 1e-9 * (np.abs(pos) + np.abs(neg))
        same = bool(
            np.all(np.abs(got_pos - pos) <= slack) and np.all(np.abs(got_neg - neg) <= slack)
        )
    else:
        same = np.array_equal(got_pos, pos.astype(np.float64)) and np.array_equal(
            got_neg, neg.astype(np.float64)
        )
    if not (inside and same):
        raise InputError(
            f"{label}: a refinement pass found other rows than the pass before it "
            "(the input must give the same rows on every read: persist it or read a "
            "fixed snapshot)"
        )


def refine_arrays(
    labels: np.ndarray,
    scores: np.ndarray,
    buckets: int,
    weights: np.ndarray | None = None,
    options: RefineOptions = RefineOptions(),
) -> FlatHistogram:
    """:func:`refine` on in-memory rows: the numpy reference of the Spark passes.

    Same validity rules as :func:`~tally.counts.count_binary` (invalid rows are skipped).
    """
    labels = np.asarray(labels, np.float64)
    scores = np.asarray(scores, np.float64)
    counts = count_binary(labels, scores, buckets, (), weights)
    valid = invalid_reason(labels, scores, weights) < 0
    y = labels[valid] == 1
    s = scores[valid]
    w = None if weights is None else np.asarray(weights, np.float64)[valid]

    def run_pass(steps: Sequence[Step]) -> Cells:
        rows, node = walk(s, buckets, steps)
        dtype = np.int64 if w is None else np.float64
        if rows.size == 0:
            empty, nothing = np.zeros(0, np.int64), np.zeros(0, dtype)
            return Cells(empty, nothing, nothing, s[:0], s[:0], empty)
        order = np.lexsort((s[rows], node))
        node, rows = node[order], rows[order]
        starts = np.flatnonzero(np.r_[True, node[1:] != node[:-1]])
        yr, sr = y[rows], s[rows]
        wr = np.ones(rows.shape[0]) if w is None else w[rows]
        pos = np.add.reduceat(np.where(yr, wr, 0.0), starts)
        neg = np.add.reduceat(np.where(yr, 0.0, wr), starts)
        return Cells(
            node=node[starts],
            pos=np.rint(pos).astype(dtype) if w is None else pos,
            neg=np.rint(neg).astype(dtype) if w is None else neg,
            low=sr[starts],
            high=np.maximum.reduceat(sr, starts),
            rows=np.diff(np.r_[starts, rows.shape[0]]),
        )

    return refine(counts, run_pass, options)
