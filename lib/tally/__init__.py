"""Tally: model evaluation metrics over billion-row tables from mergeable count tables.

``tally.evaluate(df, label=..., score=...)`` gives the metrics of a Spark (or pandas)
DataFrame as a pandas DataFrame (:func:`tally.api.evaluate`); ``tally evaluate`` runs
the same from a YAML config and writes the tables (:mod:`tally.job`).
"""

import os

__version__ = "0.1.0"

#: OpenBLAS threads for the metric math, unless the environment says otherwise. The
#: driver's only BLAS calls are dot products over the buckets (at most 2^20 values),
#: too small to gain from threads, and OpenBLAS's idle threads spin after each call,
#: taking CPU from the job (docs/benchmarks.md, "Driver BLAS threads"). Set before
#: numpy is first imported (``import tally`` comes first in Tally's entry points);
#: Spark's Python workers inherit it and never call BLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__all__ = ["__version__", "evaluate"]


def __getattr__(name: str) -> object:
    """``tally.evaluate`` (:func:`tally.api.evaluate`), imported on first use: ``import
    tally`` itself loads no Spark."""
    if name == "evaluate":
        from tally.api import evaluate

        return evaluate
    raise AttributeError(f"module 'tally' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "evaluate"])
