"""Input column checks, before any row is read: every column there, of a type the task reads.

The task says which columns it reads and what they hold
(:meth:`tally.tasks.base.Task.column_roles`); this module maps that onto Spark types.
A missing column or a wrong type is an :class:`~tally.errors.InputError` naming the
column, its role and the types it may have.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tally.errors import InputError
from tally.plan import CountPlan
from tally.spark.names import column
from tally.tasks import ColumnRole, task_of

#: Spark types of each kind of value a :class:`~tally.tasks.base.ColumnRole` names.
SPARK_VALUES: dict[str, tuple[type[T.DataType], ...]] = {
    "number": (T.NumericType,),
    "number_or_boolean": (T.NumericType, T.BooleanType),
    "integer": (T.ByteType, T.ShortType, T.IntegerType, T.LongType),
}

#: Slice columns hold flat values: these types cannot be a slice.
_NOT_SLICES = (T.ArrayType, T.MapType, T.StructType, T.BinaryType)


def roles(plan: CountPlan) -> list[ColumnRole]:
    """Every input column of ``plan`` with its role: the task's, the weight, the slices."""
    out = task_of(plan.task).column_roles(plan)
    if plan.weight:
        out.append(ColumnRole("weight", plan.weight, "number", "numeric"))
    return out


def has_values(data_type: T.DataType, role: ColumnRole, allowed: dict) -> bool:
    """Whether a column of ``data_type`` holds what ``role`` says (types per ``allowed``)."""
    if role.array:
        if not isinstance(data_type, T.ArrayType):
            return False
        data_type = data_type.elementType
    return isinstance(data_type, allowed[role.values])


def check_columns(df: DataFrame, plan: CountPlan) -> None:
    """Fail before scanning when a column is missing or of a type that cannot be evaluated."""
    fields = {f.name: f.dataType for f in df.schema.fields}
    slices = [ColumnRole("slice", c, "any", "") for spec in plan.slices for c in spec]
    for role in [*roles(plan), *slices]:
        if role.column not in fields:
            available = ", ".join(fields) or "(none)"
            raise InputError(
                f"{role.role} column '{role.column}' not found in input; columns: {available}"
            )
        found = fields[role.column]
        if role.values != "any" and not has_values(found, role, SPARK_VALUES):
            raise InputError(
                f"{role.role} column '{role.column}' has type {found.simpleString()}, "
                f"expected {role.description}"
            )
    for spec in plan.slices:
        for c in spec:
            if isinstance(fields[c], _NOT_SLICES):
                raise InputError(
                    f"slice column '{c}' has type {fields[c].simpleString()}; "
                    "slice columns must be strings, numbers, booleans or dates"
                )


def check_array_widths(df: DataFrame, plan: CountPlan) -> None:
    """Fail when the first non-null array of a per-class column does not hold K values.

    Multi-label labels and scores, and multiclass score arrays, must have one value per
    configured class. A row of another length is an invalid row (``wrong_length``), but
    when the *first* non-null array already disagrees, the config's ``classes`` is
    almost surely wrong for this input: fail naming both numbers instead of skipping
    every row. Reads one value per such column (``limit(1)``), not the input; nothing
    for tasks without per-class arrays.
    """
    k = len(plan.classes)
    for role in task_of(plan.task).column_roles(plan):
        if not role.per_class:
            continue
        name = role.column
        first = df.where(column(name).isNotNull()).select(F.size(column(name))).limit(1).collect()
        if first and first[0][0] != k:
            raise InputError(
                f"column '{name}' holds arrays of {first[0][0]} values (first non-null row) "
                f"but classes lists {k}; fix 'classes' or the column"
            )
