"""The histogram bucket of a score, and the side of a threshold it is on.

Both readers and every numpy reference use these definitions; the Spark SQL reader
restates them in SQL (:func:`tally.spark.rules.bucket_column`,
:func:`tally.spark.rules.thresholds_passed_column`), held to them by
``tests/test_rules_sql_vs_numpy.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def bucket_of(scores: np.ndarray, buckets: int) -> np.ndarray:
    """Bucket index of scores in [0, 1], as int64: the number of edges ``k / B`` (k ≥ 1) ≤ score.

    That is ``min(floor(score · B), B − 1)`` in exact arithmetic. In float64,
    ``score · B`` can round across an edge when ``B`` is not a power of two
    (``0.29 · 100 = 28.999…``), so the index is corrected by one where it disagrees
    with the comparison ``score >= k / B``: bucket ``b`` then holds exactly the
    scores with ``b / B <= score < (b + 1) / B``, which the bucket-boundary
    metrics (``best_f1_threshold``) rely on.
    """
    s = np.asarray(scores, np.float64)
    index = np.floor(s * buckets).astype(np.int64)
    if not is_power_of_two(buckets):  # for powers of two s·B is exact
        index -= s < index / buckets
        index += s >= (index + 1) / buckets
    return np.minimum(index, buckets - 1)


def bucket_into(
    minus_s: np.ndarray, buckets: int, out: np.ndarray, scratch: np.ndarray, top: bool = True
) -> None:
    """:func:`bucket_of` of scores in [0, 1], given negated, into ``out`` (int64).

    ``floor(s·B)`` is the truncation of ``s·B = (−s)·(−B) ≥ 0`` (negation is exact);
    the edge correction for ``B`` not a power of two is :func:`bucket_of`'s.
    Only a score of 1 lands past the last bucket: ``top=False`` says there is none.
    """
    np.multiply(minus_s, -float(buckets), out=scratch)
    out[...] = scratch  # float -> int truncates: floor for s·B >= 0
    if buckets & (buckets - 1):
        s = np.negative(minus_s, out=scratch)
        out -= s < out / buckets
        out += s >= (out + 1) / buckets
    if top:
        np.minimum(out, buckets - 1, out=out)


def predicted_positive(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Whether each score is predicted positive at ``threshold``: ``score >= threshold``.

    Compared on the raw score (not its bucket), so thresholded metrics are exact.
    """
    return scores >= threshold


def thresholds_passed(
    scores: np.ndarray, thresholds: Sequence[float], out: np.ndarray | None = None
) -> np.ndarray:
    """How many of ``thresholds`` each score reaches (:func:`predicted_positive`), as
    int64; added into ``out`` when given. With the thresholds sorted, a row with
    ``above = a`` is positive at the ``a`` lowest ones.
    """
    s = np.asarray(scores, np.float64)
    above = np.zeros(s.shape, np.int64) if out is None else out
    for t in thresholds:
        above += predicted_positive(s, t)
    return above
