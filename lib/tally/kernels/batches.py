"""The Arrow batches a reader hands the kernels: their columns, declared once and checked.

For one plan, every batch the counting kernels take holds:

``y``
    the label column (binary: numbers or booleans; multi-label: arrays of them);
``s0 … s{S−1}``
    the plan's score columns in order (binary: numbers; multi-label: arrays of numbers);
``w``
    the weight column as float64 (weighted plans only);
``c0 … c{C−1}``
    the plan's distinct slice columns in order of first use (strings, integers or
    booleans, dictionary-encoded or not).

Nulls are nulls (not NaN), so the kernels can tell a null score from a NaN score.
:class:`BatchColumns` names them for a plan; :meth:`BatchColumns.check` fails with
:class:`BatchContractError` on a batch that breaks the contract, naming the column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa

from tally.plan import CountPlan

LABEL = "y"
WEIGHT = "w"


def score_column(i: int) -> str:
    """The batch column of the plan's ``i``-th score column."""
    return f"s{i}"


def slice_column(j: int) -> str:
    """The batch column of the plan's ``j``-th distinct slice column."""
    return f"c{j}"


class BatchContractError(ValueError):
    """A batch does not hold the columns :class:`BatchColumns` declares."""


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _label(t: pa.DataType) -> bool:
    return _numeric(t) or pa.types.is_boolean(t) or pa.types.is_null(t)


def _flat(t: pa.DataType) -> bool:
    return not pa.types.is_nested(t)


def _list_of(element: object) -> object:
    def accepts(t: pa.DataType) -> bool:
        return (pa.types.is_list(t) or pa.types.is_large_list(t)) and element(t.value_type)

    return accepts


@dataclass(frozen=True)
class BatchColumns:
    """The batch columns of one plan, and the input column each one holds.

    ``arrays``: labels and scores are arrays (one value per class: multi-label), not
    single values; ``label_arrays`` overrides it for the labels (None: as ``arrays``).
    Multiclass batches hold what ``plan.multiclass_input`` says: arrays of scores with
    single labels ("scores"), arrays of both ("pixels"), neither ("prediction").
    """

    #: batch column -> input column, in batch order
    sources: Mapping[str, str]
    #: the batch columns of each slice spec (spec ``k`` of the plan is entry ``k − 1``)
    spec_columns: tuple[tuple[str, ...], ...]
    arrays: bool = False
    label_arrays: bool | None = None

    @classmethod
    def of(cls, plan: CountPlan, *, arrays: bool = False) -> BatchColumns:
        slices = plan.slice_columns
        sources = {LABEL: plan.label, **{score_column(i): s for i, s in enumerate(plan.scores)}}
        if plan.weight:
            sources[WEIGHT] = plan.weight
        sources |= {slice_column(j): c for j, c in enumerate(slices)}
        specs = tuple(tuple(slice_column(slices.index(c)) for c in spec) for spec in plan.slices)
        if plan.task == "multiclass":
            kind = plan.multiclass_input
            return cls(sources, specs, kind != "prediction", kind == "pixels")
        return cls(sources, specs, arrays)

    @property
    def slice_sources(self) -> dict[str, str]:
        """Only the slice columns (batch column -> input column)."""
        return {b: c for b, c in self.sources.items() if b.startswith("c")}

    def slices_only(self) -> BatchColumns:
        """The contract of batches that hold only the slice columns."""
        return BatchColumns(self.slice_sources, self.spec_columns, self.arrays, self.label_arrays)

    def check(self, schema: pa.Schema) -> None:
        """Raise :class:`BatchContractError` unless ``schema`` holds every declared column
        with a type the kernels take."""
        array = "arrays of " if self.arrays else ""
        label_arrays = self.arrays if self.label_arrays is None else self.label_arrays
        label_array = "arrays of " if label_arrays else ""
        rules = {
            LABEL: (
                _list_of(_label) if label_arrays else _label,
                f"{label_array}numbers or booleans",
            ),
            WEIGHT: (pa.types.is_float64, "float64"),
        }
        score = (_list_of(_numeric) if self.arrays else _numeric, f"{array}numbers")
        for name in self.sources:
            if name not in schema.names:
                raise BatchContractError(
                    f"batch column '{name}' ({self.sources[name]}) is missing; "
                    f"the batch has {', '.join(schema.names) or 'no columns'}"
                )
            if name.startswith("c"):
                accepts, wanted = _flat, "flat values (strings, numbers, booleans)"
            else:
                accepts, wanted = rules.get(name, score)
            kind = schema.field(name).type
            if not accepts(kind):
                raise BatchContractError(
                    f"batch column '{name}' ({self.sources[name]}) has type {kind}, not {wanted}"
                )
