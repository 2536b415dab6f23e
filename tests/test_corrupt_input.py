"""A corrupt Parquet file in the input (the footer of a half-written file missing): exit 3,
one line naming the file, nothing written; with either reader, wherever the bad file is
met: Spark reading a footer for the schema, the arrow reader on the driver, or a task.

Every file holds the same rows, so the files are the same size and a file is corrupted in
place (its last 8 bytes, Parquet's footer length and ``PAR1`` magic, zeroed): Spark's
listing of the folder stays true. A ``_common_metadata`` file (Parquet's schema summary,
which Spark reads for the schema when it is there, and lists as a file without rows)
keeps Spark's schema inference off the data files where a case needs it. Through the
command itself (`tally evaluate`: exit 3, the one line on stderr, no Python or Java trace),
the case of a task meeting the file is a step of ``test_end_to_end.py``'s batch.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import PYARROW_SAYS, corrupt_footer
from tally.config import InputConfig, parse_config
from tally.errors import InputError
from tally.job import evaluate, plan_of
from tally.spark.count import arrow_reader

DB = "tally_corrupt"
DAY = dt.date(2026, 11, 22)
FILES = 4
ROWS = pa.table({"label": [1, 0, 1, 0], "score": [0.9, 0.2, 0.6, 0.4]})


def write_folder(folder: Path, summary: bool = True) -> None:
    folder.mkdir(parents=True)
    for i in range(FILES):
        pq.write_table(ROWS, folder / f"part-{i}.parquet")
    if summary:
        pq.write_metadata(ROWS.schema, folder / "_common_metadata")


def data_files(spark, folder: Path) -> list[str]:
    """The data files as Spark lists them (``inputFiles()`` order), without the summary."""
    return [f for f in spark.read.parquet(str(folder)).inputFiles() if "/part-" in f]


def config(path: str, model: str, reader: str):
    return parse_config(
        {
            "model": model,
            "input": {"path": path, "reader": reader},
            "columns": {"label": "label", "score": "score"},
            "metrics": {"buckets": 64},
            "output": {
                "table": f"{DB}.metrics",
                "counts_table": f"{DB}.counts",
                "curves_table": f"{DB}.curves",
            },
        }
    )


def nothing_written(spark, model: str) -> bool:
    tables = [f"{DB}.{t}" for t in ("metrics", "counts", "curves")]
    return not any(
        spark.catalog.tableExists(t) and spark.table(t).where(f"model = '{model}'").count()
        for t in tables
    )


@pytest.mark.parametrize("reader", ["arrow", "spark"])
def test_a_corrupt_file_met_inside_a_task_fails_naming_it(spark, tmp_path, reader):
    """Not the arrow reader's first file: the failure happens in a Spark task (for the
    arrow reader, a Python worker) and reaches the driver as Spark's error."""
    folder = tmp_path / "night"
    write_folder(folder)
    bad = data_files(spark, folder)[-1]
    corrupt_footer(bad)
    model = f"corrupt_task_{reader}"
    with pytest.raises(InputError) as info:
        evaluate(spark, config(str(folder), model, reader), DAY)
    message = str(info.value)
    if reader == "arrow":
        assert message == f"cannot read input file {bad}: {PYARROW_SAYS}"
    else:  # Spark's words for what is wrong
        assert message.startswith(f"cannot read input file {bad}: ")
        assert message.endswith("is not a Parquet file. Expected magic number at tail, but "
                                "found [0, 0, 0, 0]")
    assert nothing_written(spark, model)


def test_a_corrupt_file_met_when_spark_reads_the_schema_fails_naming_it(spark, tmp_path):
    """Without a summary, Spark reads a data file's footer for the schema: every file is
    corrupt here, so whichever it reads is named."""
    folder = tmp_path / "night"
    write_folder(folder, summary=False)
    files = data_files(spark, folder)
    for uri in files:
        corrupt_footer(uri)
    with pytest.raises(InputError) as info:
        evaluate(spark, config(str(folder), "corrupt_schema", "auto"), DAY)
    message = str(info.value)
    named = message.removeprefix("cannot read input file ").split(": ", 1)[0]
    assert named.replace("file:///", "file:/") in {f.replace("file:///", "file:/") for f in files}
    assert "\n" not in message
    assert nothing_written(spark, "corrupt_schema")


def test_the_arrow_reader_names_a_corrupt_file_it_opens_on_the_driver(spark, tmp_path):
    """The arrow reader opens its first file on the driver to plan its tasks."""
    folder = tmp_path / "night"
    write_folder(folder, summary=False)
    df = spark.read.parquet(str(folder))  # the schema is read while every file is whole
    first = df.inputFiles()[0]
    corrupt_footer(first)
    plan = plan_of(config(str(folder), "x", "arrow"))
    with pytest.raises(InputError) as info:
        arrow_reader(spark, df, plan, InputConfig(path=str(folder), reader="arrow"))
    assert str(info.value) == f"cannot read input file {first}: {PYARROW_SAYS}"
