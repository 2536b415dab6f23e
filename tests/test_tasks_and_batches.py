"""The task registry (an unknown task is an error, never a default) and the batch column
contract between a reader and the numpy kernels."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from tally.config import TASKS as CONFIG_TASKS
from tally.kernels.batches import BatchColumns, BatchContractError
from tally.plan import ALL_ROWS, COUNT_COLUMNS, CountPlan
from tally.tasks import TASKS, decode_groups, task_of


def test_every_task_of_the_config_is_in_the_registry_and_no_other():
    assert set(TASKS) == set(CONFIG_TASKS)
    assert all(task_of(name).name == name for name in CONFIG_TASKS)


@pytest.mark.parametrize("name", ["regression", "Binary", ""])
def test_an_unknown_task_is_an_error_naming_the_known_ones(name):
    with pytest.raises(ValueError, match=r"unknown task .*binary, multilabel, multiclass"):
        task_of(name)
    plan = CountPlan("y", ("s",), 4, (0.5,), task=name)
    empty = pa.table({c: pa.array([], pa.string() if i < 2 else pa.float64())
                      for i, c in enumerate(COUNT_COLUMNS)})  # fmt: skip
    with pytest.raises(ValueError, match="unknown task"):
        decode_groups(empty, plan)


def test_an_empty_count_table_decodes_to_each_score_columns_empty_all_group():
    plan = CountPlan("y", ("a", "b"), 4, (0.5,), task="multiclass", classes=("x", "y", "z"))
    empty = pa.table({c: pa.array([], pa.string() if i < 2 else pa.float64())
                      for i, c in enumerate(COUNT_COLUMNS)})  # fmt: skip
    groups = decode_groups(empty, plan)
    assert set(groups) == {("a", ALL_ROWS), ("b", ALL_ROWS)}
    assert groups[("a", ALL_ROWS)].rows == 0
    assert groups[("a", ALL_ROWS)].confusion.shape == (3, 3)


def binary_batch(**override: pa.Array) -> pa.RecordBatch:
    columns = {
        "y": pa.array([0, 1, None], pa.int8()),
        "s0": pa.array([0.1, 0.9, 0.5]),
        "s1": pa.array([0.2, 0.8, None], pa.float32()),
        "w": pa.array([1.0, 2.0, None]),
        "c0": pa.array(["US", None, "FR"]).dictionary_encode(),
        "c1": pa.array([1, 2, 3]),
    }
    return pa.RecordBatch.from_pydict(columns | override)


PLAN = CountPlan(
    "label", ("p", "q"), 8, (0.5,), weight="wt", slices=(("country",), ("country", "hour"))
)


def test_the_batch_columns_of_a_plan():
    batch = BatchColumns.of(PLAN)
    assert dict(batch.sources) == {
        "y": "label", "s0": "p", "s1": "q", "w": "wt", "c0": "country", "c1": "hour"
    }  # fmt: skip
    assert batch.spec_columns == (("c0",), ("c0", "c1"))
    assert dict(batch.slices_only().sources) == {"c0": "country", "c1": "hour"}
    BatchColumns.of(PLAN).check(binary_batch().schema)  # a batch as a reader gives it


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"s1": pa.array(["a", "b", "c"])}, r"'s1' \(q\) has type string, not numbers"),
        ({"w": pa.array([1, 2, 3], pa.int64())}, r"'w' \(wt\) has type int64, not float64"),
        ({"y": pa.array(["0", "1", "1"])}, r"'y' \(label\) has type string"),
        ({"c1": pa.array([[1], [2], [3]])}, r"'c1' \(hour\) has type list<item: int64>"),
    ],
)
def test_a_batch_that_breaks_the_contract_is_refused_naming_the_column(override, message):
    with pytest.raises(BatchContractError, match=message):
        BatchColumns.of(PLAN).check(binary_batch(**override).schema)


def test_a_missing_batch_column_is_named():
    schema = binary_batch().schema
    schema = schema.remove(schema.get_field_index("s1"))
    with pytest.raises(BatchContractError, match=r"'s1' \(q\) is missing"):
        BatchColumns.of(PLAN).check(schema)


def test_multilabel_batches_hold_arrays():
    plan = CountPlan("labels", ("scores",), 8, (0.5,), task="multilabel", classes=("a", "b"))
    arrays = BatchColumns.of(plan, arrays=True)
    good = pa.RecordBatch.from_pydict({
        "y": pa.array([[0, 1], None], pa.list_(pa.int8())),
        "s0": pa.array([[0.1, 0.9], [0.5, np.nan]], pa.list_(pa.float32())),
    })  # fmt: skip
    arrays.check(good.schema)
    with pytest.raises(BatchContractError, match=r"'y' \(labels\) .*not arrays of numbers"):
        arrays.check(binary_batch().schema)
