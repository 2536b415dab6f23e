"""Tally's Python API: the metrics of a DataFrame of scored rows, without YAML or tables.

:func:`evaluate` is what ``tally evaluate`` runs between reading the input and writing
the tables (:func:`tally.evaluation.measure`), for a DataFrame at hand in a notebook
or a pipeline. Its arguments are the config's keys and are checked by the config's
own parsers, so a bad value fails with the message a YAML config would get, naming
the config key (``metrics.buckets``, ``columns.score``, …).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from tally.config import DEFAULT_MAX_SLICES, TASK_COLUMNS, JobConfig, parse_config
from tally.evaluation import measure

__all__ = ["RESULT_COLUMNS", "evaluate"]

#: The columns of :func:`evaluate`'s DataFrame: the results table's, less its partition
#: columns (``run_date``, ``model``, ``window_days``), which name a run, not a metric.
RESULT_COLUMNS = ("score_column", "slice", "metric", "class", "threshold", "value", "reason")


def evaluate(
    df: DataFrame | pd.DataFrame,
    *,
    label: str,
    score: str | Sequence[str] | None = None,
    prediction: str | Sequence[str] | None = None,
    task: str = "binary",
    classes: int | Sequence[str] | None = None,
    weight: str | None = None,
    slices: Sequence[str | Sequence[str]] | None = None,
    max_slices_per_spec: int = DEFAULT_MAX_SLICES,
    thresholds: Sequence[float] = (0.5,),
    buckets: int | None = None,
    beta: float | None = None,
    top_k: Sequence[int] = (),
    ci_level: float = 0.95,
    calibration_bins: int = 10,
    auc: str = "bucketed",
    auc_tolerance: float = 0.0,
    auc_max_passes: int = 10,
    auc_cell_budget: int = 1 << 20,
    score_transform: str = "none",
    compare: Sequence[Sequence[str]] | None = None,
    group_key: str | None = None,
    on_invalid: str = "skip",
    pixels: bool = False,
    spark: SparkSession | None = None,
) -> pd.DataFrame:
    """Evaluate model scores in ``df``: every metric Tally computes, one row per number.

    The rows are counted in one pass by Spark (nothing is collected but the count
    tables), then the metrics are computed from the counts, as ``tally evaluate``
    does.

    Parameters
    ----------
    df : pyspark.sql.DataFrame or pandas.DataFrame
        The scored rows. A pandas DataFrame is turned into a Spark one first (with
        ``spark``, or the active session).
    label : str
        The label column: 0/1 (``binary``), an array of 0/1 (``multilabel``), an integer
        class index (``multiclass``), or an array of them (``multiclass``, ``pixels``).
    score : str or list of str, optional
        The score column(s), each evaluated on its own: scores in [0, 1] (``binary``),
        arrays of K scores (``multilabel``; ``multiclass``, where the prediction is the
        argmax). Config key ``columns.score`` (``columns.scores``).
    prediction : str or list of str, optional
        ``multiclass`` only, instead of ``score``: the predicted class index column(s)
        (arrays of them with ``pixels=True``).
    task : {"binary", "multilabel", "multiclass"}, default "binary"
    classes : int or list of str, optional
        ``multilabel`` and ``multiclass``: the class names, or their number.
    weight : str, optional
        A column of non-negative row weights: every count becomes a sum of weights.
    slices : list of list of str, optional
        Slice specs: ``[["country"], ["country", "device"]]`` adds metrics per country
        and per (country, device); a bare name stands for a one-column spec.
    max_slices_per_spec : int, default 1000
        Values of a spec past this many (the most frequent are kept) are added up as
        the slice ``col=__other__``.
    thresholds : list of float, default (0.5,)
        Where the thresholded metrics (precision, recall, F1, …) are computed, on the
        raw score (``score >= t`` is positive).
    buckets : int, optional
        Histogram buckets: AUCs are exact within the ``roc_auc_error_bound`` they come
        with (default 65536; for ``multilabel`` at most 2^20 cells over the classes).
    beta, top_k, ci_level, calibration_bins, auc, auc_tolerance, auc_max_passes, auc_cell_budget
        The ``metrics.*`` keys of the config (docs/metrics.md); ``auc="exact"`` refines
        the histogram with further passes until the AUC and average precision are exact.
    score_transform : {"none", "sigmoid"}, default "none"
        ``"sigmoid"``: the scores are logits, evaluated as ``1 / (1 + exp(-x))``.
    compare : list of [str, str], optional
        Pairs of score columns compared with DeLong's paired test (``auc_diff`` rows
        with the score column ``"a vs b"``).
    group_key : str, optional
        A column whose values are groups (a user, a query): adds ``gauc`` and ``ois_f1``.
    on_invalid : {"skip", "fail"}, default "skip"
        Invalid rows (null or NaN values, scores outside [0, 1], …) are counted by reason
        and skipped, or raise :class:`~tally.errors.InvalidRowsError`.
    pixels : bool, default False
        ``multiclass`` with ``prediction``: label and prediction columns hold arrays,
        one class index per pixel.
    spark : SparkSession, optional
        The session for a pandas ``df`` (default: the active one, or a new one).

    Returns
    -------
    pandas.DataFrame
        The results table's long shape, one row per number, with the columns
        :data:`RESULT_COLUMNS`: ``score_column``, ``slice`` (``ALL``,
        ``country=US``, …), ``metric``, ``class`` (per-class metrics, else None),
        ``threshold`` (thresholded metrics, else NaN), ``value`` (NaN where the metric
        is undefined) and ``reason`` (why it is undefined). The results table's
        partition columns (``run_date``, ``model``, ``window_days``) are left out: they
        name a run of the job, which this is not.

    Raises
    ------
    tally.errors.ConfigError
        A bad argument, with the message the config gets for its key.
    tally.errors.InputError
        A missing column, or one of a type the task cannot evaluate.

    Notes
    -----
    The rows are read by Spark's own reader: ``df`` may be any DataFrame (filtered,
    joined, …). ``tally evaluate`` can read Parquet files with pyarrow instead
    (``input.reader``), since it knows the DataFrame is a plain read of those files.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn.metrics import roc_auc_score
    >>> import tally
    >>> rows = pd.DataFrame({
    ...     "y": [0, 0, 1, 1, 0, 1],
    ...     "p": [0.1, 0.4, 0.35, 0.8, 0.2, 0.9],
    ...     "country": ["US", "US", "US", "FR", "FR", "FR"],
    ... })
    >>> metrics = tally.evaluate(
    ...     spark.createDataFrame(rows), label="y", score="p", slices=[["country"]]
    ... )
    >>> list(metrics.columns)
    ['score_column', 'slice', 'metric', 'class', 'threshold', 'value', 'reason']
    >>> auc = metrics.query("slice == 'ALL' and metric == 'roc_auc'")["value"].item()
    >>> abs(auc - roc_auc_score(rows["y"], rows["p"])) < 1e-12
    True
    >>> sorted(metrics["slice"].unique())
    ['ALL', 'country=FR', 'country=US']
    >>> fr = metrics.query("slice == 'country=FR' and metric == 'precision'")
    >>> fr[["threshold", "value"]].to_numpy().tolist()
    [[0.5, 1.0]]
    """
    if isinstance(df, pd.DataFrame):
        session = spark or SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
        df = session.createDataFrame(df)
    raw: dict[str, Any] = {
        "model": "tally.evaluate",
        "task": task,
        "input": {"table": "tally_evaluate.input"},  # the DataFrame is the input
        "columns": _columns(task, label, score, prediction, weight, pixels),
        "metrics": _metrics(
            thresholds=list(thresholds),
            buckets=buckets,
            beta=beta,
            top_k=list(top_k),
            ci_level=ci_level,
            calibration_bins=calibration_bins,
            auc=auc,
            auc_tolerance=auc_tolerance,
            auc_max_passes=auc_max_passes,
            auc_cell_budget=auc_cell_budget,
        ),
        "on_invalid": on_invalid,
        "max_slices_per_spec": max_slices_per_spec,
        "score_transform": score_transform,
    }
    if classes is not None:
        raw["classes"] = classes if isinstance(classes, int) else list(classes)
    if slices is not None:
        raw["slices"] = [s if isinstance(s, str) else list(s) for s in slices]
    if compare is not None:
        raw["compare"] = [list(pair) for pair in compare]
    if group_key is not None:
        raw["groups"] = {"key": group_key}
    return evaluate_config(df, parse_config(raw))


def evaluate_config(df: DataFrame, config: JobConfig) -> pd.DataFrame:
    """:func:`evaluate` with a parsed config (its input and output sections are unused)."""
    evaluation = measure(df, config)
    try:
        values = evaluation.values()
    finally:
        evaluation.release()
    records = [
        (score_column, slice_label, m.metric, m.class_, m.threshold, m.value, m.reason)
        for (score_column, slice_label), metrics in values.items()
        for m in metrics
    ]
    frame = pd.DataFrame.from_records(records, columns=list(RESULT_COLUMNS))
    return frame.astype({"threshold": "float64", "value": "float64"})


def _columns(
    task: str,
    label: str,
    score: str | Sequence[str] | None,
    prediction: str | Sequence[str] | None,
    weight: str | None,
    pixels: bool,
) -> dict[str, Any]:
    """The config's ``columns`` section: the keys the task takes for the label and the
    outputs (:data:`tally.config.TASK_COLUMNS`; for ``multiclass`` by what the outputs
    hold). An unknown task gets the binary keys: :func:`~tally.config.parse_config` then
    names the task."""
    kind = "pixels" if pixels else "prediction" if prediction is not None else "scores"
    shapes = TASK_COLUMNS.get(task, TASK_COLUMNS["binary"])
    label_key, output_key, _ = next((s for s in shapes if s[2] in (None, kind)), shapes[0])
    outputs = prediction if prediction is not None else score
    columns: dict[str, Any] = {label_key: label}
    if outputs is not None:
        columns[output_key] = outputs if isinstance(outputs, str) else list(outputs)
    if weight is not None:
        columns["weight"] = weight
    return columns


def _metrics(buckets: int | None, beta: float | None, **options: object) -> dict[str, Any]:
    """The config's ``metrics`` section (``buckets``, ``beta``: only when given)."""
    given = {"buckets": buckets, "beta": beta}
    return {**options, **{k: v for k, v in given.items() if v is not None}}
