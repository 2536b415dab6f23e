"""One refinement pass of exact AUC (``metrics.auc: exact``) in numpy.

The loop that chooses what to refine is :func:`tally.metrics.exact.refine`; a pass
takes the valid rows, starts each at its pass-1 bucket and applies the pass's
:class:`Step` look-ups in order, then sums per final node id (:class:`Cells`).
:func:`walk` is the reference of those moves, :class:`StepTables` the same moves
with dense look-up tables (one gather per row per step instead of a search), and
:class:`PassCells` the per-node sums one task adds its Arrow batches into
(:mod:`tally.kernels.batches`: ``y``, ``s0``, ``w``); ``treeReduce`` adds the tasks'
sums. The Spark SQL pass (:mod:`tally.spark.readers.sql.refine`) is a chain of
broadcast joins doing the same moves, tested against :func:`walk`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from tally.kernels.batches import LABEL, WEIGHT, score_column
from tally.kernels.binary import valid_rows
from tally.kernels.buckets import bucket_of


def sub_bin(s: np.ndarray, lo: np.ndarray, hi: np.ndarray, resolution: int) -> np.ndarray:
    """``min(floor((s − lo) / (hi − lo) · R), R − 1)`` as int64, for ``lo <= s <= hi``, ``lo < hi``.

    The Spark twin is :func:`tally.spark.rules.sub_bin_column` (same operations in
    the same order, so both give the same index for the same double).
    """
    j = np.floor((s - lo) / (hi - lo) * float(resolution)).astype(np.int64)
    return np.minimum(j, resolution - 1)


@dataclass(frozen=True)
class Step:
    """One equality look-up of a pass, applied to every row still in it.

    A row whose node id equals ``parent[e]`` moves on to node ``base[e]`` when
    ``split[e]`` is False (its bin was not refined at this step), else, if
    ``lo[e] <= s <= hi[e]``, to node ``base[e] + sub_bin(s, lo[e], hi[e], resolution)``.
    Rows that match no ``parent`` (``parent`` values are unique) drop out of the pass.
    """

    parent: np.ndarray
    split: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    base: np.ndarray
    resolution: int

    @property
    def size(self) -> int:
        return int(self.parent.shape[0])


@dataclass(frozen=True)
class Cells:
    """What one pass returns per non-empty node of its last step, sorted by node id."""

    node: np.ndarray
    pos: np.ndarray
    neg: np.ndarray
    low: np.ndarray
    high: np.ndarray
    rows: np.ndarray

    def sorted(self) -> Cells:
        order = np.argsort(self.node, kind="stable")
        return Cells(*(getattr(self, f)[order] for f in self.__dataclass_fields__))


#: Runs one pass over the valid rows: start from node id = pass-1 bucket, apply the
#: steps in order, and return per final node id the sums of :class:`Cells`.
PassRunner = Callable[[Sequence[Step]], Cells]


def walk(s: np.ndarray, buckets: int, steps: Sequence[Step]) -> tuple[np.ndarray, np.ndarray]:
    """Rows (indices into ``s``) still in the pass after ``steps``, and their final node ids."""
    node = bucket_of(s, buckets)
    rows = np.arange(s.shape[0])
    for step in steps:
        order = np.argsort(step.parent)
        parent = step.parent[order]
        at = np.minimum(np.searchsorted(parent, node), max(step.size - 1, 0))
        match = parent[at] == node if step.size else np.zeros(node.shape, bool)
        rows, e = rows[match], order[at[match]]
        sr = s[rows]
        split = step.split[e]
        inside = ~split | ((step.lo[e] <= sr) & (sr <= step.hi[e]))
        rows, e, sr, split = rows[inside], e[inside], sr[inside], split[inside]
        j = sub_bin(sr, step.lo[e], step.hi[e], step.resolution)
        node = np.where(split, step.base[e] + j, step.base[e])
    return rows, node



class StepTables:
    """The steps of one pass, each with a dense table from parent id to its entry.

    A step's parent ids are nodes made by one earlier pass (or the pass-1 buckets), so
    they span at most about ``cell_budget`` ids and the table is an int64 array of
    that length: one gather per row instead of a search.
    """

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = list(steps)
        self.first: list[int] = []
        self.entry: list[np.ndarray] = []
        for step in self.steps:
            first = int(step.parent.min()) if step.size else 0
            entry = np.full(int(step.parent.max()) - first + 1 if step.size else 0, -1, np.int64)
            entry[step.parent - first] = np.arange(step.size)
            self.first.append(first)
            self.entry.append(entry)

    def walk(self, s: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows (indices into ``s``) still in the pass after every step, and their final
        node ids: :func:`walk` with table look-ups."""
        node = bucket_of(s, buckets)
        rows = np.arange(s.shape[0])
        for step, first, entry in zip(self.steps, self.first, self.entry, strict=True):
            at = node - first
            known = (at >= 0) & (at < entry.shape[0])
            e = np.full(node.shape[0], -1, np.int64)
            e[known] = entry[at[known]]
            match = e >= 0
            rows, e = rows[match], e[match]
            sr = s[rows]
            split = step.split[e]
            inside = ~split | ((step.lo[e] <= sr) & (sr <= step.hi[e]))
            rows, e, sr, split = rows[inside], e[inside], sr[inside], split[inside]
            node = step.base[e].copy()
            refined = np.flatnonzero(split)
            if refined.size:
                er = e[refined]
                node[refined] += sub_bin(sr[refined], step.lo[er], step.hi[er], step.resolution)
        return rows, node

    def node_range(self) -> tuple[int, int]:
        """``[first, end)``: the ids the last step can move a row to."""
        last = self.steps[-1]
        if not last.size:
            return 0, 0
        ends = np.where(last.split, last.base + last.resolution, last.base + 1)
        return int(last.base.min()), int(ends.max())


class PassCells:
    """One pass's sums per final node id, dense over the ids ``[first, first + size)``.

    Positives and negatives are sums of weights (of 1 unweighted: exact below 2^53);
    ``low`` and ``high`` the smallest and largest score. Pickled (between executors
    and to the driver) as the non-empty nodes only.
    """

    def __init__(self, first: int, size: int, weighted: bool) -> None:
        self.first, self.size, self.weighted = first, size, weighted
        self.pos = np.zeros(size)
        self.neg = np.zeros(size)
        self.rows = np.zeros(size, np.int64)
        self.low = np.full(size, np.inf)
        self.high = np.full(size, -np.inf)

    def add(
        self,
        batch: pa.RecordBatch,
        tables: StepTables,
        buckets: int,
    ) -> None:
        """Add the valid rows of ``batch`` (columns ``y``, ``s0``, ``w`` when weighted)."""
        weights = batch.column(WEIGHT) if self.weighted else None
        positive, s, w = valid_rows(batch.column(LABEL), batch.column(score_column(0)), weights)
        rows, node = tables.walk(s, buckets)
        at = node - self.first
        sr, yr = s[rows], positive[rows]
        weight = np.ones(rows.shape[0]) if w is None else w[rows]
        np.add.at(self.pos, at, np.where(yr, weight, 0.0))
        np.add.at(self.neg, at, np.where(yr, 0.0, weight))
        np.add.at(self.rows, at, 1)
        np.minimum.at(self.low, at, sr)
        np.maximum.at(self.high, at, sr)

    def merge(self, other: PassCells) -> PassCells:
        """Add ``other`` (of the same pass) into this one and return it."""
        self.pos += other.pos
        self.neg += other.neg
        self.rows += other.rows
        np.minimum(self.low, other.low, out=self.low)
        np.maximum(self.high, other.high, out=self.high)
        return self

    def cells(self) -> Cells:
        """The non-empty nodes, by id (counts as int64 unweighted)."""
        at = np.flatnonzero(self.rows)
        pos, neg = self.pos[at], self.neg[at]
        if not self.weighted:
            pos, neg = np.rint(pos).astype(np.int64), np.rint(neg).astype(np.int64)
        return Cells(
            node=at + self.first,
            pos=pos,
            neg=neg,
            low=self.low[at],
            high=self.high[at],
            rows=self.rows[at],
        )

    def __getstate__(self) -> dict:
        at = np.flatnonzero(self.rows)
        head = {"first": self.first, "size": self.size, "weighted": self.weighted, "at": at}
        return head | {k: getattr(self, k)[at] for k in ("pos", "neg", "rows", "low", "high")}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["first"], state["size"], state["weighted"])  # type: ignore[misc]
        for name in ("pos", "neg", "rows", "low", "high"):
            getattr(self, name)[state["at"]] = state[name]
