"""README's ``spark-sql`` line as a user runs it from a plain shell: ``.venv/bin/tally spark-sql
-e "..."`` in a project folder whose ``conf/`` names the catalog, with nothing set beforehand
(``PATH`` without the venv, no ``SPARK_*`` or ``PYSPARK_*`` variables).

Spark's own ``spark-sql`` script from the venv fails there (it finds Spark with the system
``python3``, which has no PySpark). One JVM: the statements make a table of the catalog over
Parquet rows written here with pyarrow, read Spark's setting from ``conf/`` back, and select
the rows, which must be the ones written (marked ``e2e``). Two quick tests hold the parts
without a JVM: every argument reaches ``spark-sql``, and the command and environment built.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pyspark
import pytest

from helpers import BIN, write_spark_conf
from tally.cli import build_parser
from tally.spark import class_sharing
from tally.spark.spark_sql import spark_sql_command

ROWS = {"metric": ["roc_auc", "pr_auc", "count"], "value": [0.8125, 0.40625, 1234.0]}


def plain_environment(home: Path) -> dict[str, str]:
    """What a new shell has: a system ``PATH`` (with Java), a home, a locale, and the user's
    cache of class-data archives (``~/.cache/tally``, where `tally` runs leave one)."""
    java = shutil.which("java")
    path = ["/usr/local/bin", "/usr/bin", "/bin"]
    if java and str(Path(java).parent) not in path:
        path.insert(0, str(Path(java).parent))
    env = {
        "PATH": os.pathsep.join(path),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        class_sharing.CACHE_ENV: str(class_sharing.cache_dir()),
    }
    if "JAVA_HOME" in os.environ:
        env["JAVA_HOME"] = os.environ["JAVA_HOME"]
    return env


def test_every_argument_goes_to_spark_sql():
    for args in (["-e", "SELECT 1"], ["--help"], ["-S", "-f", "q.sql", "--verbose"], []):
        parsed = build_parser().parse_args(["spark-sql", *args])
        assert (parsed.command, parsed.args) == ("spark-sql", args)


def test_the_command_is_spark_home_s_spark_sql_with_conf_and_this_python(tmp_path, monkeypatch):
    for name in ("SPARK_HOME", "SPARK_CONF_DIR", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "spark-defaults.conf").write_text("spark.ui.enabled false\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(class_sharing.CACHE_ENV, str(tmp_path / "cache"))  # no archive there
    argv, env = spark_sql_command(["-e", "SELECT 1"])
    assert Path(argv[0]) == Path(pyspark.__file__).parent / "bin" / "spark-sql"
    assert Path(argv[0]).is_file() and argv[1:] == ["-e", "SELECT 1"]
    assert env["SPARK_CONF_DIR"] == str(tmp_path / "conf")
    assert env["PYSPARK_PYTHON"] == env["PYSPARK_DRIVER_PYTHON"] == sys.executable

    monkeypatch.setenv("SPARK_HOME", "/opt/spark")  # set values win
    assert spark_sql_command([])[0] == ["/opt/spark/bin/spark-sql"]


def test_with_an_archive_the_shell_maps_it_unless_its_options_are_the_user_s(
    tmp_path, monkeypatch
):
    for name in ("SPARK_HOME", "SPARK_CONF_DIR", "PYSPARK_SUBMIT_ARGS", class_sharing.CDS_ENV):
        monkeypatch.delenv(name, raising=False)
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "spark-defaults.conf").write_text("spark.ui.enabled false\n")
    (conf / "log4j2.properties").write_text("rootLogger.level = warn\n")
    monkeypatch.chdir(tmp_path)
    cache = tmp_path / "cache"
    monkeypatch.setenv(class_sharing.CACHE_ENV, str(cache))
    java = class_sharing.find_java(os.environ)
    if java is None:
        pytest.skip("no java on PATH")
    spark_home = Path(pyspark.__file__).parent
    archive = cache / f"spark-{class_sharing.environment_digest(spark_home, java)}.jsa"
    cache.mkdir()
    archive.write_bytes(class_sharing.DYNAMIC_MAGIC + b"rest of an archive")

    argv, env = spark_sql_command(["-S", "-e", "SELECT 1"])
    assert Path(argv[0]) == spark_home / "bin" / "spark-sql"
    assert argv[1:3] == ["--properties-file", str(conf / "spark-defaults.conf")]
    assert argv[3] == "--driver-java-options" and argv[5:] == ["-S", "-e", "SELECT 1"]
    java_options = shlex.split(argv[4])
    assert f"-XX:SharedArchiveFile={archive}" in java_options
    assert f"-Dlog4j2.configurationFile=file:{conf / 'log4j2.properties'}" in java_options
    empty = Path(env["SPARK_CONF_DIR"])  # first on the class path: must be empty
    assert empty != conf and empty.is_dir() and not any(empty.iterdir())

    for own in (["--driver-java-options", "-Dx=1"], ["--properties-file=my.conf"]):
        argv, env = spark_sql_command([*own, "-e", "SELECT 1"])
        assert argv[1:] == [*own, "-e", "SELECT 1"] and env["SPARK_CONF_DIR"] == str(conf)


@pytest.mark.e2e
def test_tally_spark_sql_sees_the_catalog_from_a_plain_shell(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(write_spark_conf(tmp_path / "catalog"), project / "conf")  # catalog elsewhere
    (tmp_path / "rows").mkdir()
    pq.write_table(pa.table(ROWS), tmp_path / "rows" / "part-0.parquet")
    statements = (
        "CREATE DATABASE tally; "
        f"CREATE TABLE tally.metrics USING parquet LOCATION '{tmp_path / 'rows'}'; "
        "SET spark.sql.shuffle.partitions; "
        "SELECT * FROM tally.metrics LIMIT 10"
    )
    done = subprocess.run(
        [str(BIN / "tally"), "spark-sql", "-S", "-e", statements],
        cwd=project,
        env=plain_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "spark.sql.shuffle.partitions\t2" in lines  # conf/ was read (Spark's default: 200)
    rows = sorted(tuple(x.split("\t")) for x in lines if "\t" in x and not x.startswith("spark."))
    expected = sorted((m, repr(v)) for m, v in zip(ROWS["metric"], ROWS["value"], strict=True))
    assert rows == expected
    assert (tmp_path / "catalog" / "metastore_db").is_dir()  # conf/'s metastore, not ./
    assert not (project / "metastore_db").exists()
