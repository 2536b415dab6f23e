"""What one pass counts (:class:`CountPlan`), and the shape of the count table every reader gives.

Every reader (:mod:`tally.spark.readers`) takes a :class:`CountPlan` and returns the
same count table: one row per (score column, slice, cell) with the columns
:data:`COUNT_COLUMNS`. The rules of its keys live here, once, for both readers:

* the ``slice`` label: ``ALL`` for every row, else ``col=value/col=value`` with a
  null value written ``null`` (:func:`slice_label`);
* which values a slice spec keeps when it has more than ``max_slices_per_spec``:
  the most frequent, ties by value ascending with nulls first (:func:`kept_values`);
  the others are added up as the value ``__other__`` (:data:`OTHER_VALUE`).

What a ``cell`` id means depends on the task (:mod:`tally.kernels.cells`). This
module is plain Python: no numpy, no Spark.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: The ``slice`` label of the group of every row.
ALL_ROWS = "ALL"
#: The value that stands for every value of a slice spec past ``max_slices_per_spec``.
OTHER_VALUE = "__other__"
#: How a null slice value reads in a ``slice`` label.
NULL_VALUE = "null"

#: The count table's columns and their Spark SQL types, in order (the stored counts
#: table adds its run keys).
COUNT_FIELDS: tuple[tuple[str, str], ...] = (
    ("score_column", "string"),
    ("slice", "string"),
    ("cell", "bigint"),
    ("n", "bigint"),
    ("w", "double"),
    ("wy", "double"),
    ("w_loss", "double"),
    ("w_sqerr", "double"),
    ("w_score", "double"),
)
COUNT_COLUMNS: tuple[str, ...] = tuple(name for name, _ in COUNT_FIELDS)
#: What a cell sums: rows ``n``, weights ``w`` (``n`` unweighted), weighted positives
#: ``wy``, weighted log loss ``w_loss``, squared error ``w_sqerr`` and score ``w_score``.
SUM_COLUMNS: tuple[str, ...] = COUNT_COLUMNS[3:]
#: :data:`COUNT_FIELDS` as a Spark DDL schema string.
COUNT_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in COUNT_FIELDS)


def cell_keys_schema(width: int, sums: Sequence[str] = SUM_COLUMNS) -> str:
    """DDL schema of cells before labelling: ``score_index``, ``spec``, ``v0 … v{width−1}``
    (the spec's slice values as strings), ``cell``, then ``sums`` (``n`` a long, the
    rest doubles). Spec 0 is ALL; spec ``k`` is ``plan.slices[k − 1]``."""
    values = "".join(f"v{j} string, " for j in range(width))
    sum_types = ", ".join(f"{s} {'long' if s == 'n' else 'double'}" for s in sums)
    return f"score_index int, spec int, {values}cell long, {sum_types}"


@dataclass(frozen=True)
class CountPlan:
    """What one pass counts: columns, slice specs, histogram and thresholds.

    ``task`` names an entry of :data:`tally.tasks.TASKS`. ``classes`` and ``top_k`` are
    for the multi-class tasks; ``multiclass_input`` says what a multiclass ``scores``
    column holds: "prediction" (an int class), "scores" (an array of K scores, the
    prediction is the argmax) or "pixels" (arrays of labels and predictions).
    ``score_transform`` "sigmoid" evaluates a binary score ``x`` as ``1 / (1 + exp(−x))``.
    """

    label: str
    scores: tuple[str, ...]
    buckets: int
    thresholds: tuple[float, ...]
    weight: str | None = None
    slices: tuple[tuple[str, ...], ...] = ()
    max_slices_per_spec: int = 1000
    task: str = "binary"
    classes: tuple[str, ...] = ()
    top_k: tuple[int, ...] = ()
    multiclass_input: str = "prediction"
    score_transform: str = "none"

    @property
    def needed_columns(self) -> list[str]:
        """Every input column the pass reads, each once, in order."""
        names = [self.label, *self.scores]
        if self.weight:
            names.append(self.weight)
        for spec in self.slices:
            names.extend(spec)
        return list(dict.fromkeys(names))

    @property
    def slice_columns(self) -> list[str]:
        """The columns of every slice spec, each once, in order."""
        return list(dict.fromkeys(c for spec in self.slices for c in spec))

    @property
    def slice_width(self) -> int:
        """Columns of the widest slice spec (0 without slices): the ``v{j}`` keys."""
        return max((len(spec) for spec in self.slices), default=0)

    @property
    def weighted(self) -> bool:
        return self.weight is not None


def slice_label(columns: Sequence[str], values: Sequence[str | None]) -> str:
    """``ALL`` for no columns, else ``col=value/col=value`` (a null value reads ``null``)."""
    if not columns:
        return ALL_ROWS
    parts = zip(columns, values, strict=True)
    return "/".join(f"{c}={NULL_VALUE if v is None else v}" for c, v in parts)


def kept_value_order(value: tuple[str | None, ...]) -> tuple:
    """Sort key among values of the same row count: ascending, a null before any string."""
    return tuple((v is not None, v or "") for v in value)


def kept_values(rows: Mapping[tuple, int], limit: int) -> list[tuple]:
    """The ``limit`` values of a slice spec with the most rows, ties by value
    (:func:`kept_value_order`): the values a spec keeps, the rest being ``__other__``."""

    def order(item: tuple[tuple, int]) -> tuple:
        value, n = item
        return (-n, kept_value_order(value))

    return [value for value, _ in sorted(rows.items(), key=order)[:limit]]
