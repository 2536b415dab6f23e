"""Pure functions from count tables to metric values (numpy only, no Spark)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricValue:
    """One number of the results table.

    ``value`` is None when the metric is undefined for these counts (one class
    absent, a zero denominator); ``reason`` then says why, in words. ``class_``
    names the class of per-class metrics (the results table's ``class`` column).
    """

    metric: str
    value: float | None
    threshold: float | None = None
    reason: str | None = None
    class_: str | None = None

    @classmethod
    def undefined(
        cls, metric: str, reason: str, threshold: float | None = None, class_: str | None = None
    ) -> MetricValue:
        return cls(metric, None, threshold, reason, class_)


def ratio(
    metric: str,
    numerator: float,
    denominator: float,
    reason: str,
    threshold: float | None = None,
    class_: str | None = None,
) -> MetricValue:
    """``numerator / denominator``, or undefined with ``reason`` when the denominator is 0."""
    if denominator == 0:
        return MetricValue.undefined(metric, reason, threshold, class_)
    return MetricValue(metric, float(numerator) / float(denominator), threshold, None, class_)
