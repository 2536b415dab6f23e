"""Class-data sharing for the JVM ``tally`` launches (tally.spark.class_sharing): when it
applies, which archive it reads or writes, and that a missing, corrupt or foreign archive
never stops the JVM (real ``java`` runs, no timings)."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from tally.spark import class_sharing as cs

JAVA = cs.find_java({"PATH": os.environ.get("PATH", "")})


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    """A conf directory like the project's: spark-defaults.conf, log4j2.properties, YAML."""
    d = tmp_path / "conf"
    d.mkdir()
    lines = [
        "spark.sql.catalogImplementation hive",
        "spark.driver.extraJavaOptions -Dfoo=bar '-Dbaz=a b'",
    ]
    (d / "spark-defaults.conf").write_text("\n".join(lines) + "\n")
    (d / "log4j2.properties").write_text("rootLogger.level = warn\n")
    (d / "demo.yaml").write_text("model: demo\n")
    return d


@pytest.fixture
def spark_home(tmp_path: Path) -> Path:
    home = tmp_path / "spark"
    (home / "jars").mkdir(parents=True)
    (home / "jars" / "a.jar").write_bytes(b"jar a")
    return home


def plan(conf: Path, spark_home: Path, cache: Path, **env: str) -> cs.Launch | None:
    java = Path(JAVA) if JAVA else spark_home / "jars" / "a.jar"  # any file to digest
    return cs.plan_launch({"SPARK_CONF_DIR": str(conf), **env}, spark_home, java, cache)


def submit_args(launch: cs.Launch) -> list[str]:
    return shlex.split(launch.env["PYSPARK_SUBMIT_ARGS"])


def test_first_launch_writes_the_archive_to_a_private_file(conf, spark_home, tmp_path):
    cache = tmp_path / "cache"
    launch = plan(conf, spark_home, cache)
    assert launch is not None and launch.writing is not None
    assert launch.writing.parent == cache and launch.writing != launch.archive
    args = submit_args(launch)
    assert args[:2] == ["--properties-file", str((conf / "spark-defaults.conf").resolve())]
    assert args[-1] == "pyspark-shell"
    options = shlex.split(args[args.index("--driver-java-options") + 1])
    # the conf file's own driver options are kept (--driver-java-options replaces them)
    assert options[:2] == ["-Dfoo=bar", "-Dbaz=a b"]  # quoted again for Spark's parser
    assert f"-XX:ArchiveClassesAtExit={launch.writing}" in options
    assert f"-Dlog4j2.configurationFile=file:{(conf / 'log4j2.properties').resolve()}" in options
    # Spark's class path starts with SPARK_CONF_DIR: an empty directory, or Java cannot dump
    empty = Path(launch.env["SPARK_CONF_DIR"])
    assert empty.is_dir() and not any(empty.iterdir())
    # a second run while the first writes starts without sharing rather than race it
    assert plan(conf, spark_home, cache) is None


def test_written_archive_is_moved_into_place_and_read_next_time(conf, spark_home, tmp_path):
    cache = tmp_path / "cache"
    launch = plan(conf, spark_home, cache)
    launch.writing.write_bytes(cs.DYNAMIC_MAGIC + b"rest of an archive")
    assert cs.finish_writing(launch, 0)
    assert launch.archive.read_bytes().startswith(cs.DYNAMIC_MAGIC)
    again = plan(conf, spark_home, cache)
    assert again is not None and again.writing is None and again.archive == launch.archive
    options = submit_args(again)[submit_args(again).index("--driver-java-options") + 1]
    assert f"-XX:SharedArchiveFile={launch.archive}" in options


@pytest.mark.parametrize("exit_code, content", [(1, cs.DYNAMIC_MAGIC), (0, b"junk"), (None, b"")])
def test_failed_or_bad_dump_is_dropped_and_the_lock_released(
    conf, spark_home, tmp_path, exit_code, content
):
    cache = tmp_path / "cache"
    launch = plan(conf, spark_home, cache)
    launch.writing.write_bytes(content)
    assert not cs.finish_writing(launch, exit_code)
    assert not launch.archive.exists() and not launch.writing.exists()
    assert plan(conf, spark_home, cache).writing is not None  # the next run tries again


def test_corrupt_archive_is_replaced(conf, spark_home, tmp_path):
    cache = tmp_path / "cache"
    first = plan(conf, spark_home, cache)
    cs.finish_writing(first, None)  # release the lock
    first.archive.write_bytes(b"\x00" * 64)  # truncated / foreign
    launch = plan(conf, spark_home, cache)
    assert launch.writing is not None and not first.archive.exists()


def test_stale_writer_lock_is_taken_over(conf, spark_home, tmp_path):
    cache = tmp_path / "cache"
    crashed = plan(conf, spark_home, cache)
    lock = crashed.archive.with_suffix(".lock")
    old = lock.stat().st_mtime - cs.STALE_LOCK_SECONDS - 1
    os.utime(lock, (old, old))
    orphan = crashed.writing
    orphan.write_bytes(cs.DYNAMIC_MAGIC)  # its JVM was killed while writing
    os.utime(orphan, (old, old))
    assert plan(conf, spark_home, cache).writing is not None
    assert not orphan.exists()


def test_archive_name_follows_spark_jars(conf, spark_home, tmp_path):
    cache = tmp_path / "cache"
    before = plan(conf, spark_home, cache).archive
    (spark_home / "jars" / "b.jar").write_bytes(b"new jar")
    cs.finish_writing(plan(conf, spark_home, tmp_path / "other"), None)
    assert plan(conf, spark_home, tmp_path / "third").archive.name != before.name


@pytest.mark.parametrize(
    "env, extra_file",
    [
        ({"TALLY_CDS": "off"}, None),
        ({"TALLY_CDS": "0"}, None),
        ({"PYSPARK_SUBMIT_ARGS": "--master local[1] pyspark-shell"}, None),
        ({"PYSPARK_GATEWAY_PORT": "4040"}, None),  # under spark-submit: the JVM runs already
        ({}, "hive-site.xml"),  # read from the class path: sharing would hide it
        ({}, "spark-env.sh"),  # sourced by Spark's scripts from SPARK_CONF_DIR
    ],
)
def test_no_sharing_where_it_would_change_the_launch(conf, spark_home, tmp_path, env, extra_file):
    if extra_file:
        (conf / extra_file).write_text("")
    assert plan(conf, spark_home, tmp_path / "cache", **env) is None


def test_no_sharing_without_a_conf_directory(spark_home, tmp_path):
    assert cs.plan_launch({}, spark_home, Path("/bin/sh"), tmp_path) is None
    assert plan(tmp_path / "missing", spark_home, tmp_path / "cache") is None


def test_environment_is_restored(monkeypatch):
    monkeypatch.setenv("SPARK_CONF_DIR", "/conf")
    monkeypatch.delenv("PYSPARK_SUBMIT_ARGS", raising=False)
    with cs.environment({"SPARK_CONF_DIR": "/empty", "PYSPARK_SUBMIT_ARGS": "x"}):
        assert os.environ["SPARK_CONF_DIR"] == "/empty"
    assert os.environ["SPARK_CONF_DIR"] == "/conf"
    assert "PYSPARK_SUBMIT_ARGS" not in os.environ


@pytest.mark.skipif(JAVA is None, reason="no java on PATH")
@pytest.mark.parametrize("content", [b"", b"\x00" * 4096, cs.DYNAMIC_MAGIC + b"\x00" * 4096])
def test_java_starts_with_a_missing_or_corrupt_archive(tmp_path, content):
    """The options a launch passes never stop the JVM: with an archive that is empty,
    foreign, or has the right magic and garbage after it, ``java`` still runs, silently."""
    archive = tmp_path / "spark.jsa"
    if content:
        archive.write_bytes(content)
    done = subprocess.run(
        [str(JAVA), f"-XX:SharedArchiveFile={archive}", cs.QUIET, "-version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "cds" not in done.stdout.lower() + done.stderr.lower()


class _Builder:
    """Stands in for ``SparkSession.builder``: records the launch environment it sees."""

    def __init__(self) -> None:
        self.submit_args: str | None = None

    def getOrCreate(self) -> str:  # noqa: N802 (SparkSession.Builder's name)
        self.submit_args = os.environ.get("PYSPARK_SUBMIT_ARGS")
        return "session"


@pytest.fixture
def no_jvm(monkeypatch, conf, spark_home, tmp_path) -> Path:
    """start_session's view: no JVM yet, the conf dir above, a cache of its own."""
    from pyspark import SparkContext

    from tally.spark import session

    cache = tmp_path / "cache"
    monkeypatch.setattr(SparkContext, "_gateway", None)
    monkeypatch.setattr(session, "_find_spark_home", lambda: str(spark_home))
    monkeypatch.setenv("SPARK_CONF_DIR", str(conf))
    monkeypatch.setenv(cs.CACHE_ENV, str(cache))
    for name in ("PYSPARK_SUBMIT_ARGS", "PYSPARK_GATEWAY_PORT", cs.CDS_ENV):
        monkeypatch.delenv(name, raising=False)
    return cache


@pytest.mark.skipif(JAVA is None, reason="no java on PATH")
def test_a_session_that_may_not_write_the_archive_starts_without_one(no_jvm):
    from tally.spark.session import start_session

    builder = _Builder()
    assert start_session(builder, write_archive=False) == "session"
    assert builder.submit_args is None  # launched as usual
    assert not list(no_jvm.glob("*.lock")) and not list(no_jvm.glob("*.jsa*"))  # claim given up


@pytest.mark.skipif(JAVA is None, reason="no java on PATH")
def test_a_session_reads_an_archive_that_is_there_and_restores_the_environment(
    no_jvm, spark_home
):
    from tally.spark.session import start_session

    first = cs.plan_launch(os.environ, spark_home, cs.find_java(os.environ), no_jvm)
    assert first is not None and first.writing is not None
    first.writing.write_bytes(cs.DYNAMIC_MAGIC + b"rest of an archive")
    assert cs.finish_writing(first, 0)  # as a run that wrote it
    builder = _Builder()
    start_session(builder, write_archive=False)
    assert f"-XX:SharedArchiveFile={first.archive}" in builder.submit_args
    assert "PYSPARK_SUBMIT_ARGS" not in os.environ


def test_a_launch_that_may_not_write_reads_an_archive_or_starts_as_usual(
    conf, spark_home, tmp_path
):
    cache = tmp_path / "cache"
    java = Path(JAVA) if JAVA else spark_home / "jars" / "a.jar"
    environ = {"SPARK_CONF_DIR": str(conf)}
    # no archive: no launch with sharing, and no claim left that would stop a writer
    assert cs.plan_launch(environ, spark_home, java, cache, may_write=False) is None
    assert not list(cache.glob("*.lock")) and not list(cache.glob("*.tmp"))
    writer = cs.plan_launch(environ, spark_home, java, cache)
    assert writer is not None and writer.writing is not None
    writer.writing.write_bytes(cs.DYNAMIC_MAGIC + b"rest of an archive")
    assert cs.finish_writing(writer, 0)
    reader = cs.plan_launch(environ, spark_home, java, cache, may_write=False)
    assert reader is not None and reader.writing is None
    # the same options for Spark's scripts as for PySpark's launch
    assert [*reader.submit_options, "pyspark-shell"] == submit_args(reader)
    assert f"-XX:SharedArchiveFile={writer.archive}" in reader.submit_options[3]
