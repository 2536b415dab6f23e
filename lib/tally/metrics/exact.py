"""Exact ROC AUC and average precision: sort the rows of the buckets that carry error.

The first pass counts positives ``p_b`` and negatives ``n_b`` per bucket
``b / B <= s < (b + 1) / B``. :func:`~tally.metrics.binary.roc_auc` counts every
pair sharing a bucket as a tie (½), so the bucketed AUC is within
``½ · Σ_b p_b · n_b / (P · N)`` of the exact one. Those formulas hold for *any*
ordered sequence of disjoint score ranges ("bins"), not only equal-width buckets:
this module keeps such a sequence, a :class:`FlatHistogram`, and makes its metrics
exact with one more read of the input in the usual case.

**Which bins carry error.** For the AUC: a bin with positives *and* negatives
whose scores are not all equal (it contributes ``½ p_b n_b / (P N)`` to the
bound). For average precision (step-wise over distinct thresholds, as
scikit-learn's): a bin with positives whose scores are not all equal and with any
negative in it or above it. Without negatives at or above ``b``, precision is 1 at
every threshold inside ``b``, so merging them changes nothing; a bin without
positives adds no recall step. A bin of equal scores carries no error: its pairs
*are* ties, as ``roc_auc_score`` counts them, and ``average_precision_score`` puts
one threshold there, where :func:`~tally.metrics.binary.average_precision` does.

**The sort pass** (pass 2, usually the last). The rows of the bins that carry error
are sent to reducers, each holding whole bins (contiguous in score order, about
:attr:`RefineOptions.part_rows` rows each), and sorted there by score
(:mod:`tally.kernels.exact_sort`: the score's IEEE-754 bit pattern with the label in
the lowest bit, one ``np.sort`` of unsigned integers). Per bin the reducer returns its
exact share of the AUC numerator, ``pairs_b = Σ_v p_v (n_{<v} + ½ n_v)`` over the
bin's distinct scores ``v``, and of ``P · AP``, ``ap_b = Σ_v p_v · precision(v)``,
precision from the positives and negatives above the bin (known from pass 1) and
those at or above ``v`` in it. The bin is then *resolved*:

* ``AUC = (Σ_b p_b · N_<b + Σ_b w_b) / (P · N)`` with ``w_b = pairs_b`` for resolved
  bins and ``½ p_b n_b`` for the others (:func:`exact_roc_auc`);
* ``AP = Σ_b a_b / P`` with ``a_b = ap_b`` for resolved bins and ``p_b ·
  tp_b / (tp_b + fp_b)`` (cumulative from the top) for the others
  (:func:`exact_average_precision`);
* the bound ``½ Σ p_b n_b / (P N)`` runs over the bins neither resolved nor
  single-valued (:func:`exact_bound`).

Reads: pass 1 (the counting pass) and the sort pass: 2; 1 where the counting pass
ships the rows to the reducers itself (:func:`refine_shipped`, the arrow reader).
Memory: the driver gets a few numbers per sorted bin (at most ``cell_budget`` bins
per pass, those carrying the most AUC error first); a reducer holds its bins' rows (4
bytes a row for float32 scores, 8 for float64, plus 8 for a weight); a bin with more
than :attr:`RefineOptions.sort_rows` rows is split first.

**Split passes** (only for bins too large to sort whole). Pass ``k`` takes the ``m``
bins to split, ``[lo_i, hi_i]`` in score order (pass-1 buckets: ``[b / B, (b + 1) / B]``;
later: the smallest and largest score seen in the bin, ``lo_i < hi_i``), and gives each
row inside one the sub-bin ``j = min(floor((s − lo_i) / (hi_i − lo_i) · R), R − 1)``
with ``R = max(2, cell_budget // m)`` (:func:`~tally.kernels.refine.sub_bin`). Per
(bin, sub-bin) it sums positives and negatives (or weights), counts rows and keeps
the smallest and largest score; each split bin is replaced by its non-empty sub-bins,
in order. ``j`` is non-decreasing in ``s`` (IEEE operations round monotonically), so
sub-bins are disjoint and ordered, and every split makes progress.

**Finding a row's bin.** Every bin has a node id, unique over all passes (pass-1
bins: the bucket; sub-bin ``j`` of the ``i``-th bin split at pass ``k``:
``offset_k + i · R + j``). A pass starts each row at its bucket and applies one
:class:`Step` per earlier split, then one for the bins of this pass: an equality
look-up of the node id that moves the row to its sub-bin or keeps it. A step holds
only the nodes on the way to a bin of this pass, so rows elsewhere drop out at their
first look-up; in Spark SQL each step is a broadcast hash join on a ``long`` key.

Passes stop when no bin carries error, when the AUC bound is at most ``tolerance``
and no average-precision refinement is wanted (with ``tolerance > 0`` only the bins
carrying the most error are sorted, until the rest is within it), or after
``max_passes`` passes (pass 1 included).

This module is pure numpy: :func:`refine` is the loop, given the functions that run
a split pass and a sort pass (a reader's, :mod:`tally.spark.refine`);
:func:`refine_arrays` runs it on in-memory rows, the reference the readers' passes
are tested against.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tally.counts import BinaryCounts, count_binary
from tally.errors import InputError
from tally.kernels.buckets import bucket_of
from tally.kernels.exact_sort import (
    Above,
    BinSums,
    PartRows,
    SortJob,
    SortLayout,
    low_keys,
    pack,
    part_sums,
    resolve,
    score_keys,
)
from tally.kernels.refine import Cells, PassRunner, Step, walk
from tally.kernels.validity import invalid_reason
from tally.metrics import MetricValue
from tally.metrics.binary import NO_NEGATIVES, NO_POSITIVES, average_precision, roc_auc

log = logging.getLogger(__name__)

DEFAULT_CELL_BUDGET = 1 << 20
DEFAULT_MAX_PASSES = 10
#: A bin with more rows is split by a split pass before it is sorted.
DEFAULT_SORT_ROWS = 1 << 25
#: Rows a reducer of the sort pass aims at (parts hold whole bins).
DEFAULT_PART_ROWS = 1 << 23

#: Runs the sort pass: the steps to the bins sorted, where their rows go, and what the
#: reducers need; returns the :class:`~tally.kernels.exact_sort.BinSums` of every bin.
SortRunner = Callable[[Sequence[Step], SortLayout, SortJob], BinSums]


@dataclass(frozen=True)
class FlatHistogram:
    """Ordered bins of scores (ascending): the counts the exact metrics are computed from.

    ``pos`` / ``neg``: positives / negatives per bin (int64, or float64 sums of
    weights); ``single_valued``: whether every score of the bin is the same (known
    from the smallest and largest score seen; False for pass-1 buckets, whose range
    was not observed, unless they hold one row); ``low`` / ``high``: every score of
    the bin lies in ``[low, high]``; ``passes``: reads of the input it took
    (1: the bucketed histogram as is); ``resolved``: bins sorted by the sort pass,
    whose exact shares ``pairs`` and ``ap`` (module docstring) replace their
    bucketed ones (0 elsewhere).
    """

    pos: np.ndarray
    neg: np.ndarray
    single_valued: np.ndarray
    passes: int
    low: np.ndarray
    high: np.ndarray
    resolved: np.ndarray
    pairs: np.ndarray
    ap: np.ndarray

    @property
    def bins(self) -> int:
        return int(self.pos.shape[0])

    @property
    def exact(self) -> np.ndarray:
        """Bins whose pairs are ordered exactly (single-valued or resolved)."""
        return self.single_valued | self.resolved

    @property
    def auc_bound(self) -> float:
        """:func:`exact_bound`: 0 when :func:`exact_roc_auc` is exact."""
        return exact_bound(self)

    @property
    def ap_exact(self) -> bool:
        """Whether :func:`exact_average_precision` equals scikit-learn's."""
        return not bool(needs_ap_refinement(self.pos, self.neg, self.exact).any())


def exact_bound(flat: FlatHistogram) -> float:
    """``½ · Σ p_b · n_b / (P · N)`` over the bins neither resolved nor single-valued.

    The largest distance between :func:`exact_roc_auc` and the exact AUC: only pairs
    inside such a bin may be ordered otherwise than as a tie. 0 when every bin is
    exact, and 0 when ``P · N = 0`` (the AUC is then undefined).
    """
    p = flat.pos.astype(np.float64)
    n = flat.neg.astype(np.float64)
    pairs = float(p.sum()) * float(n.sum())
    if pairs == 0:
        return 0.0
    multi = ~flat.exact
    return 0.5 * float(np.dot(p[multi], n[multi])) / pairs


def needs_auc_refinement(pos: np.ndarray, neg: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """Bins with positives and negatives not yet ordered exactly."""
    return (pos > 0) & (neg > 0) & ~exact


def needs_ap_refinement(pos: np.ndarray, neg: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """Bins with positives, not ordered exactly, and a negative in or above them."""
    negatives_at_or_above = np.cumsum(neg[::-1])[::-1]
    return (pos > 0) & ~exact & (negatives_at_or_above > 0)


def exact_roc_auc(flat: FlatHistogram) -> tuple[MetricValue, MetricValue]:
    """``roc_auc`` and ``roc_auc_error_bound`` of ``flat`` (module docstring).

    Without resolved bins: :func:`~tally.metrics.binary.roc_auc` of the bins.
    """
    if not flat.resolved.any():
        auc, bound = roc_auc(flat.pos, flat.neg)
        if auc.value is None:
            return auc, bound
        return auc, MetricValue("roc_auc_error_bound", exact_bound(flat))
    p = flat.pos.astype(np.float64)
    n = flat.neg.astype(np.float64)
    positives, negatives = float(p.sum()), float(n.sum())
    if positives == 0 or negatives == 0:
        reason = NO_POSITIVES if positives == 0 else NO_NEGATIVES
        return (
            MetricValue.undefined("roc_auc", reason),
            MetricValue.undefined("roc_auc_error_bound", reason),
        )
    within = np.where(flat.resolved, flat.pairs, 0.5 * p * n)
    numerator = float(np.dot(p, np.cumsum(n) - n)) + float(within.sum())
    auc = numerator / (positives * negatives)
    return MetricValue("roc_auc", auc), MetricValue("roc_auc_error_bound", exact_bound(flat))


def exact_average_precision(flat: FlatHistogram) -> MetricValue:
    """``pr_auc`` of ``flat`` (module docstring); scikit-learn's
    ``average_precision_score`` when :attr:`FlatHistogram.ap_exact`.

    Without resolved bins: :func:`~tally.metrics.binary.average_precision` of the bins.
    """
    if not flat.resolved.any():
        return average_precision(flat.pos, flat.neg)
    p = flat.pos.astype(np.float64)
    positives = float(p.sum())
    if positives == 0:
        return MetricValue.undefined("pr_auc", NO_POSITIVES)
    tp = np.cumsum(p[::-1])[::-1]
    fp = np.cumsum(flat.neg[::-1].astype(np.float64))[::-1]
    gained = (p > 0) & ~flat.resolved
    terms = flat.ap[flat.resolved].sum()
    terms += float(np.sum(p[gained] * tp[gained] / (tp[gained] + fp[gained])))
    return MetricValue("pr_auc", float(terms) / positives)


def exact_auc_metrics(flat: FlatHistogram) -> list[MetricValue]:
    """``roc_auc``, ``roc_auc_error_bound`` (:func:`exact_bound`) and ``pr_auc`` of ``flat``.

    Drop-in replacements of the bucketed values of :func:`~tally.metrics.binary.binary_metrics`
    (same names, same undefined reasons). ``pr_auc`` equals scikit-learn's
    ``average_precision_score`` when :attr:`FlatHistogram.ap_exact`.
    """
    return [*exact_roc_auc(flat), exact_average_precision(flat)]


@dataclass(frozen=True)
class _Split:
    """The bins split at one pass: ids, ranges, and where their children's ids start."""

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
        resolved=np.zeros(buckets, bool),
        pairs=np.zeros(buckets),
        ap=np.zeros(buckets),
    )


@dataclass(frozen=True)
class RefineOptions:
    """When passes stop and how much one may hold (``metrics.auc_*`` in the config).

    Passes stop when the AUC bound is 0 and (``refine_ap``) average precision is exact,
    when the bound is at most ``tolerance`` and ``refine_ap`` is False, or after
    ``max_passes`` passes over the input, pass 1 included (1: nothing is read, the
    bucketed histogram is returned). At most ``cell_budget`` cells (split pass) or
    bins (sort pass) reach the driver per pass. A bin of more than ``sort_rows`` rows
    is split before it is sorted; a reducer of the sort pass gets about ``part_rows``
    rows, and there are a multiple of ``parallelism`` of them.
    """

    tolerance: float = 0.0
    refine_ap: bool = True
    max_passes: int = DEFAULT_MAX_PASSES
    cell_budget: int = DEFAULT_CELL_BUDGET
    sort_rows: int = DEFAULT_SORT_ROWS
    part_rows: int = DEFAULT_PART_ROWS
    parallelism: int = 1

    def __post_init__(self) -> None:
        if self.max_passes < 1:
            raise ValueError(f"max_passes must be at least 1, got {self.max_passes}")
        if self.cell_budget < 2:
            raise ValueError(f"cell_budget must be at least 2, got {self.cell_budget}")
        if self.tolerance < 0:
            raise ValueError(f"tolerance must be at least 0, got {self.tolerance}")
        if min(self.sort_rows, self.part_rows, self.parallelism) < 1:
            raise ValueError("sort_rows, part_rows and parallelism must be at least 1")


def refine(
    counts: BinaryCounts,
    run_pass: PassRunner,
    run_sort: SortRunner,
    options: RefineOptions = RefineOptions(),
    label: str = "exact auc",
    narrow: bool = False,
) -> FlatHistogram:
    """Make the metrics of pass 1 (``counts``) exact with passes of ``run_sort`` (and,
    for bins too large to sort whole, ``run_pass`` first): module docstring.

    ``narrow``: every score is a float32 value (sorted as float32).

    Raises :class:`~tally.errors.InputError` when a pass does not find the rows the
    previous one counted (the input changed between passes: it must read the same
    rows each time).
    """
    bins = _Bins(counts)
    while bins.passes < options.max_passes:
        chosen = bins_to_refine(bins.histogram(), options, label)
        if chosen.size == 0:
            break
        rows = bins.rows[chosen]
        big = rows > options.sort_rows  # unknown rows (weighted pass-1 buckets): -1
        if big.any() and bins.passes + 1 < options.max_passes:
            chosen = chosen[big][: options.cell_budget // 2]
            split = bins.split(chosen, options.cell_budget)
            cells = run_pass(bins.split_steps()).sorted()
            bins.replace(chosen, split, cells, label)
            log.info(
                "%s: pass %d split %d bins of more than %d rows (R=%d) into %d",
                label,
                bins.passes,
                chosen.size,
                options.sort_rows,
                split.resolution,
                cells.node.shape[0],
            )
            continue
        if big.any():
            log.warning(
                "%s: %d bins of more than %d rows are not sorted (auc_max_passes %d "
                "leaves no pass to split them)",
                label,
                int(big.sum()),
                options.sort_rows,
                options.max_passes,
            )
            chosen = chosen[~big]
            if chosen.size == 0:
                break
        bins.sort(chosen, run_sort, options, narrow, label)
        after = bins.histogram()
        log.info(
            "%s: pass %d sorted the %d rows of %d bins in %d parts, AUC bound %.3g%s",
            label,
            bins.passes,
            int(bins.rows[chosen].sum()),
            chosen.size,
            bins.parts,
            exact_bound(after),
            f", average precision {'exact' if after.ap_exact else 'not yet exact'}"
            if options.refine_ap
            else "",
        )
    return bins.histogram()


def bins_to_refine(flat: FlatHistogram, options: RefineOptions, label: str) -> np.ndarray:
    """Indices of the bins of ``flat`` the next pass refines; empty when passes stop.

    With ``tolerance > 0`` and no average-precision refinement, only the bins carrying
    the most AUC error (``p_b · n_b``), until the others' bound is within it. At most
    ``cell_budget // 2``: when more need it, those carrying the most AUC error go
    first and the others wait for a later pass (a warning says so).
    """
    pos, neg, exact = flat.pos, flat.neg, flat.exact
    want = needs_auc_refinement(pos, neg, exact)
    ap_want = needs_ap_refinement(pos, neg, exact) if options.refine_ap else np.zeros_like(want)
    bound = exact_bound(flat)
    if bound <= options.tolerance and not ap_want.any():
        return np.zeros(0, np.int64)
    chosen = np.flatnonzero(want | ap_want)
    p, n = pos[chosen].astype(np.float64), neg[chosen].astype(np.float64)
    by_error = np.lexsort((-p, -p * n))
    limit = options.cell_budget // 2
    if not ap_want.any() and options.tolerance > 0:
        # the fewest bins whose sorting leaves a bound within the tolerance
        pairs = float(pos.astype(np.float64).sum()) * float(neg.astype(np.float64).sum())
        left = bound - np.cumsum(0.5 * (p * n)[by_error]) / pairs
        limit = min(limit, int(np.searchsorted(-left, -options.tolerance)) + 1)
    if chosen.size > limit:
        if limit == options.cell_budget // 2:
            log.warning(
                "%s: %d bins need refinement, refining the %d carrying the most AUC error "
                "this pass (cell_budget %d)",
                label,
                chosen.size,
                limit,
                options.cell_budget,
            )
        chosen = np.sort(chosen[by_error[:limit]])
    return chosen


def refine_shipped(
    counts: BinaryCounts,
    sums: BinSums,
    options: RefineOptions = RefineOptions(),
    label: str = "exact auc",
    parts: int = 0,
) -> FlatHistogram | None:
    """:func:`refine` in the count pass's read: the count pass also shipped every valid
    row to reducers holding contiguous runs of pass-1 buckets, which gave ``sums``
    (:func:`~tally.kernels.exact_sort.part_sums`: every bucket holding a row, in
    bucket order); the buckets :func:`bins_to_refine` chooses are resolved with their
    sums, the same, bit for bit, as the sort pass of :func:`refine` gives them.
    ``passes`` stays 1 (one read). Every bucket needing it is resolved at once (no
    ``cell_budget`` per pass: the sums are here already); ``parts``: the reducers, for
    the log.

    None for weighted counts (the sums per bucket would be added in another order than
    :func:`refine` adds them) and with ``max_passes`` 1.
    """
    if counts.weighted or options.max_passes < 2:
        return None
    bins = _Bins(counts)
    flat = bins.histogram()
    every = dataclasses.replace(options, cell_budget=2 * counts.buckets + 2)  # no budget
    chosen = bins_to_refine(flat, every, label)
    if chosen.size == 0:
        return flat
    at = np.searchsorted(sums.bin, chosen)
    if not np.array_equal(sums.bin[np.minimum(at, max(sums.bin.shape[0] - 1, 0))], chosen):
        raise _changed(label)  # a bucket with rows in pass 1 that the reducers did not see
    fields = {f: getattr(sums, f)[at] for f in BinSums.__dataclass_fields__}
    fields["bin"] = np.arange(chosen.size, dtype=np.int64)
    bins.parts = parts
    bins.apply(chosen, BinSums(**fields), label)
    after = bins.histogram()
    log.info(
        "%s: the count pass's read sorted the %d rows of %d bins in %d parts, AUC bound %.3g%s",
        label,
        int(bins.rows[chosen].sum()),
        chosen.size,
        parts,
        exact_bound(after),
        f", average precision {'exact' if after.ap_exact else 'not yet exact'}"
        if options.refine_ap
        else "",
    )
    return after


def assign_parts(rows: np.ndarray, options: RefineOptions) -> np.ndarray:
    """The part (reducer) of each bin (``rows`` per bin, in score order): contiguous runs
    of about equal rows, ``parallelism · ⌈total / (parallelism · part_rows)⌉`` parts
    at most; numbered 0, 1, … without gaps."""
    rows = np.maximum(rows.astype(np.float64), 0.0)
    total = float(rows.sum())
    per = options.parallelism
    parts = per * max(1, int(np.ceil(total / (per * options.part_rows))))
    before = np.cumsum(rows) - rows
    part = np.minimum((before * parts / max(total, 1.0)).astype(np.int64), parts - 1)
    return np.unique(part, return_inverse=True)[1].astype(np.int64)


class _Bins:
    """The bins so far, in score order, and every node id ever made, across passes."""

    def __init__(self, counts: BinaryCounts) -> None:
        flat = first_pass(counts)
        self.pos, self.neg, self.single = flat.pos, flat.neg, flat.single_valued
        self.low, self.high = flat.low, flat.high
        self.resolved, self.pairs, self.ap = flat.resolved, flat.pairs, flat.ap
        self.weighted = counts.weighted
        self.buckets = counts.buckets
        if counts.weighted:  # rows per bucket unknown: estimated from the weights
            weight = (counts.pos + counts.neg).astype(np.float64)
            share = weight / max(float(weight.sum()), 1e-300)
            self.rows = -np.ones(counts.buckets, np.int64)
            self.estimate = share * counts.count
        else:
            self.rows = (counts.pos + counts.neg).astype(np.int64)
            self.estimate = self.rows.astype(np.float64)
        self.node = np.arange(counts.buckets, dtype=np.int64)  # unique over all passes
        # Every node ever made (ids ascending): its parent and the pass that made it.
        self.known_id = self.node.copy()
        self.known_parent = np.full(counts.buckets, -1, np.int64)
        self.known_pass = np.ones(counts.buckets, np.int64)
        self.splits: dict[int, _Split] = {}
        self.next_id = counts.buckets
        self.passes = 1
        self.parts = 0

    def histogram(self) -> FlatHistogram:
        return FlatHistogram(
            self.pos,
            self.neg,
            self.single,
            self.passes,
            self.low,
            self.high,
            self.resolved,
            self.pairs,
            self.ap,
        )

    def split(self, chosen: np.ndarray, cell_budget: int) -> _Split:
        """Start a split pass: the bins ``chosen`` get ``R = max(2, budget // m)`` ids each."""
        self.passes += 1
        resolution = max(2, cell_budget // chosen.size)
        split = _Split(
            self.node[chosen], self.low[chosen], self.high[chosen], resolution, self.next_id
        )
        self.splits[self.passes] = split
        self.next_id += chosen.size * resolution
        return split

    def split_steps(self) -> list[Step]:
        """The look-ups of the current split pass (:func:`_steps`)."""
        split = self.splits[self.passes]
        return self._steps(split.steps_for(split.parent), split.parent)

    def _steps(self, last: Step, targets: np.ndarray) -> list[Step]:
        return _steps(
            self.splits,
            self.passes,
            last,
            targets,
            self.known_id,
            self.known_parent,
            self.known_pass,
        )

    def sort(
        self,
        chosen: np.ndarray,
        run_sort: SortRunner,
        options: RefineOptions,
        narrow: bool,
        label: str,
    ) -> None:
        """A sort pass over the bins ``chosen``: they become resolved."""
        self.passes += 1
        nodes = self.node[chosen]
        part = assign_parts(
            np.where(self.rows[chosen] >= 0, self.rows[chosen], self.estimate[chosen]), options
        )
        self.parts = int(part.max()) + 1
        top = int(nodes.max())
        first = 0 if top < self.buckets else int(nodes.min())  # pass-1 buckets: all of them
        part_of = np.full(max(top + 1, self.buckets if first == 0 else 0) - first, -1, np.int32)
        part_of[nodes - first] = part
        layout = SortLayout(first, part_of, self.parts, narrow, self.weighted)
        p = self.pos.astype(np.float64)
        n = self.neg.astype(np.float64)
        tp_above = (np.cumsum(p[::-1]) - p[::-1])[::-1]
        fp_above = (np.cumsum(n[::-1]) - n[::-1])[::-1]
        job = SortJob(
            low=low_keys(self.low[chosen], narrow),
            tp_above=tp_above[chosen],
            fp_above=fp_above[chosen],
            part_start=np.searchsorted(part, np.arange(self.parts + 1)),
            narrow=narrow,
            weighted=self.weighted,
        )
        through = Step(
            parent=nodes,
            split=np.zeros(nodes.size, bool),
            lo=np.zeros(nodes.size),
            hi=np.ones(nodes.size),
            base=nodes,
            resolution=1,
        )
        sums = run_sort(self._steps(through, nodes), layout, job)
        self.apply(chosen, sums, label)

    def apply(self, chosen: np.ndarray, sums: BinSums, label: str) -> None:
        """The bins ``chosen`` become resolved with their sorted ``sums``."""
        _check_sums(sums, self.pos[chosen], self.neg[chosen], label)
        self.resolved = self.resolved.copy()
        self.resolved[chosen] = True
        for name, values in (("pairs", sums.pairs), ("ap", sums.ap)):
            array = getattr(self, name).copy()
            array[chosen] = values
            setattr(self, name, array)
        seen = sums.rows > 0
        self.single = self.single.copy()
        self.single[chosen] = sums.single
        self.low, self.high = self.low.copy(), self.high.copy()
        self.low[chosen[seen]] = sums.low[seen]
        self.high[chosen[seen]] = sums.high[seen]
        self.rows = self.rows.copy()
        self.rows[chosen] = sums.rows

    def replace(self, chosen: np.ndarray, split: _Split, cells: Cells, label: str) -> None:
        """Put the sub-bins ``cells`` of the split bins ``chosen`` in their place."""
        interval, sub = np.divmod(cells.node - split.offset, split.resolution)
        _check_cells(cells, interval, split, self.pos[chosen], self.neg[chosen], label)
        # Every bin keeps its place, a split bin gives way to its sub-bins.
        kept = np.ones(self.pos.shape[0], bool)
        kept[chosen] = False
        where = np.concatenate([np.flatnonzero(kept), chosen[interval]])
        within = np.concatenate([np.full(int(kept.sum()), -1, np.int64), sub])
        order = np.lexsort((within, where))
        fresh = np.zeros(cells.node.shape[0])
        self.pos = _splice(self.pos, cells.pos, kept, order)
        self.neg = _splice(self.neg, cells.neg, kept, order)
        self.low = _splice(self.low, cells.low, kept, order)
        self.high = _splice(self.high, cells.high, kept, order)
        self.single = _splice(self.single, cells.low == cells.high, kept, order)
        self.resolved = _splice(self.resolved, fresh.astype(bool), kept, order)
        self.pairs = _splice(self.pairs, fresh, kept, order)
        self.ap = _splice(self.ap, fresh, kept, order)
        self.rows = _splice(self.rows, cells.rows, kept, order)
        self.estimate = _splice(self.estimate, cells.rows, kept, order)
        self.node = _splice(self.node, cells.node, kept, order)
        self.known_id = np.concatenate([self.known_id, cells.node])
        self.known_parent = np.concatenate([self.known_parent, split.parent[interval]])
        made = np.full(cells.node.shape[0], self.passes)
        self.known_pass = np.concatenate([self.known_pass, made])


def _splice(old: np.ndarray, new: np.ndarray, kept: np.ndarray, order: np.ndarray) -> np.ndarray:
    return np.concatenate([old[kept], new.astype(old.dtype, copy=False)])[order]


def _steps(
    splits: dict[int, _Split],
    now: int,
    last: Step,
    targets: np.ndarray,
    known_id: np.ndarray,
    known_parent: np.ndarray,
    known_pass: np.ndarray,
) -> list[Step]:
    """The look-ups of pass ``now``: walk each row from its bucket to a bin of this pass.

    ``last`` is the step of this pass on the bins ``targets`` (a split, or a
    pass-through for the sort pass). Working back from them: at each earlier split
    pass ``k`` a bin on the way was either made by that split (the step splits its
    parent) or is older (the step passes it through). Only nodes on the way to a
    target are in a step, so every other row drops out at its first look-up.
    """
    steps = [last]
    on_way = np.unique(targets)  # leaf nodes after pass k
    for k in sorted((k for k in splits if k < now), reverse=True):
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


def _same_sums(got_pos: np.ndarray, got_neg: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> bool:
    if pos.dtype.kind == "f":  # sums of weights, added in another order (pass 1: w − wy)
        slack = 1e-9 * (np.abs(pos) + np.abs(neg))
        return bool(
            np.all(np.abs(got_pos - pos) <= slack) and np.all(np.abs(got_neg - neg) <= slack)
        )
    return np.array_equal(got_pos, pos.astype(np.float64)) and np.array_equal(
        got_neg, neg.astype(np.float64)
    )


def _changed(label: str) -> InputError:
    return InputError(
        f"{label}: a refinement pass found other rows than the pass before it "
        "(the input must give the same rows on every read: persist it or read a "
        "fixed snapshot)"
    )


def _check_sums(sums: BinSums, pos: np.ndarray, neg: np.ndarray, label: str) -> None:
    """Each sorted bin must hold exactly its rows: else the input changed."""
    if not (
        np.array_equal(sums.bin, np.arange(pos.shape[0]))
        and _same_sums(sums.pos, sums.neg, pos, neg)
    ):
        raise _changed(label)


def _check_cells(
    cells: Cells, interval: np.ndarray, split: _Split, pos: np.ndarray, neg: np.ndarray, label: str
) -> None:
    """Each split bin's sub-bins must hold exactly its rows: else the input changed."""
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
    if not (inside and _same_sums(got_pos, got_neg, pos, neg)):
        raise _changed(label)


def refine_arrays(
    labels: np.ndarray,
    scores: np.ndarray,
    buckets: int,
    weights: np.ndarray | None = None,
    options: RefineOptions = RefineOptions(),
    narrow: bool = False,
) -> FlatHistogram:
    """:func:`refine` on in-memory rows: the numpy reference of the Spark passes.

    Same validity rules as :func:`~tally.counts.count_binary` (invalid rows are skipped).
    ``narrow``: the scores are float32 values (sorted as float32, as the readers do
    for a float32 column).
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

    def run_sort(steps: Sequence[Step], layout: SortLayout, job: SortJob) -> BinSums:
        rows, node = walk(s, buckets, steps)
        gathered = PartRows(layout)
        gathered.add(s[rows], y[rows], None if w is None else w[rows], node)
        chunks = dict(gathered.chunks())
        return BinSums.concat(
            [resolve(k, [chunks[k]] if k in chunks else [], job) for k in range(layout.parts)]
        )

    return refine(counts, run_pass, run_sort, options, narrow=narrow)


def refine_shipped_arrays(
    labels: np.ndarray,
    scores: np.ndarray,
    buckets: int,
    part_start: np.ndarray,
    options: RefineOptions = RefineOptions(),
    narrow: bool = False,
) -> FlatHistogram | None:
    """:func:`refine_shipped` on in-memory rows (unweighted), parts cut at the buckets
    ``part_start``: the numpy reference of the count pass that ships the rows."""
    labels = np.asarray(labels, np.float64)
    scores = np.asarray(scores, np.float64)
    counts = count_binary(labels, scores, buckets, ())
    valid = invalid_reason(labels, scores, None) < 0
    y, s = labels[valid] == 1, scores[valid]
    layout = shipped_layout(part_start, narrow)
    part = layout.parts_of(bucket_of(s, buckets))
    gathered = PartRows(layout)
    gathered.add_packed(part, pack(score_keys(s, narrow), y), None)
    chunks: dict[int, list] = {}
    for k, (packed, _) in gathered.chunks():
        chunks.setdefault(k, []).append(packed)
    dtype = np.uint32 if narrow else np.uint64
    sums = []
    for k in range(layout.parts):
        higher = part > k
        above = Above(int((higher & y).sum()), int((higher & ~y).sum()))
        packed = np.concatenate(chunks.get(k, [np.zeros(0, dtype)]))
        start, end = int(part_start[k]), int(part_start[k + 1])
        sums.append(part_sums(packed, buckets, start, end, above, narrow))
    return refine_shipped(counts, BinSums.concat(sums), options, parts=layout.parts)


def shipped_layout(part_start: np.ndarray, narrow: bool) -> SortLayout:
    """Where the count pass ships each row (:func:`refine_shipped`): the part of its
    pass-1 bucket, parts cut at the buckets ``part_start``."""
    buckets = int(part_start[-1])
    part_of = (np.searchsorted(part_start, np.arange(buckets), side="right") - 1).astype(np.int32)
    return SortLayout(0, part_of, int(part_start.shape[0]) - 1, narrow, False)
