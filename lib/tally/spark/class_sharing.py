"""Java class-data sharing (CDS) for the local JVM that ``tally`` launches itself.

A local run spends much of its start loading, parsing and verifying the classes of
Spark, Hive, DataNucleus and Derby from their jars. Java 17 can keep the loaded classes
in an archive (``-XX:ArchiveClassesAtExit``) that the next JVM maps instead of loading
them again (``-XX:SharedArchiveFile``). The first run in an environment writes the
archive when its JVM exits; later runs use it. ``docs/benchmarks.md`` has the figures.

The archive is only valid for the same JDK and the same class path, and Java 17 refuses
to write one when a non-empty directory is on the class path. Spark puts
``$SPARK_CONF_DIR`` first on the driver's class path, so a launch with sharing points
``SPARK_CONF_DIR`` at an empty directory and passes the conf directory's two files
explicitly: ``--properties-file spark-defaults.conf`` and
``-Dlog4j2.configurationFile=log4j2.properties``. Sharing is used only when those are all
the conf directory holds for Spark (no ``hive-site.xml``, ``spark-env.sh``, …: files that
Spark or Hadoop would read from the class path or source); otherwise, under
``spark-submit`` (a JVM already runs), with ``PYSPARK_SUBMIT_ARGS`` set, or with
``TALLY_CDS=off``, the JVM starts exactly as without this module.

A missing archive is written by the first run (its exit waits for the JVM to write it,
once); one that is unreadable or of another JDK or class path is ignored by the JVM
(``-Xshare:auto``, Java's default) and replaced by the next run's when its header is
not an archive's. The archive lives in ``$TALLY_CACHE_DIR`` (default
``$XDG_CACHE_HOME/tally`` or ``~/.cache/tally``), named by a digest of the JDK and
Spark's jars, so an upgrade of either starts a new one.

This module imports no pyspark: :mod:`tally.spark.session` applies it around the
session's start.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CDS_ENV = "TALLY_CDS"
CACHE_ENV = "TALLY_CACHE_DIR"
#: The conf directory's files that a launch with sharing passes explicitly.
PROPERTIES_FILE = "spark-defaults.conf"
LOG4J_FILE = "log4j2.properties"
#: Other files in the conf directory that Spark, Hadoop or Hive would read (from the class
#: path, or sourced by the launch scripts): any of them and sharing is not used.
_READ_BY_SPARK = (".xml", ".properties", ".sh", ".conf", ".template")
#: First bytes of a dynamic CDS archive (HotSpot's CDS_DYNAMIC_ARCHIVE_MAGIC, little endian).
DYNAMIC_MAGIC = (0xF00BABA8).to_bytes(4, "little")
#: The JVM's CDS warnings (classes it skips, e.g. from signed jars) stay off the console.
QUIET = "-Xlog:cds=off,cds+dynamic=off"
#: A writer's lock older than this is a crashed run's: another run may write.
STALE_LOCK_SECONDS = 900
#: How long a run's exit waits for its JVM to write the archive.
DUMP_WAIT_SECONDS = 600


@dataclass(frozen=True)
class Launch:
    """How to start the JVM with sharing: the environment to set (for PySpark's launch), the
    same ``spark-submit`` options as a list (for a launch through Spark's scripts), and the
    archive being written by this run (None when it reads an existing one)."""

    env: dict[str, str]
    archive: Path
    writing: Path | None = None
    submit_options: tuple[str, ...] = ()


def cache_dir() -> Path:
    """Where archives live: ``$TALLY_CACHE_DIR``, else ``$XDG_CACHE_HOME/tally``, else
    ``~/.cache/tally``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tally"


def plan_launch(
    environ: Mapping[str, str],
    spark_home: Path,
    java: Path | None,
    cache: Path,
    may_write: bool = True,
) -> Launch | None:
    """The launch with sharing, or None to start the JVM as usual.

    ``environ`` is the environment the JVM would start with; ``java`` the ``java``
    binary Spark's scripts run (None: not found). Without a usable archive, a launch that
    ``may_write`` claims the writing of one (the caller must :func:`finish_writing` it when
    the JVM exits); one that may not starts as usual.
    """
    if environ.get(CDS_ENV, "").lower() in ("0", "off", "false", "no"):
        return None
    if "PYSPARK_GATEWAY_PORT" in environ or "PYSPARK_SUBMIT_ARGS" in environ or java is None:
        return None
    conf = Path(environ["SPARK_CONF_DIR"]) if environ.get("SPARK_CONF_DIR") else None
    if conf is None or not (conf / PROPERTIES_FILE).is_file():
        return None
    others = [
        p.name
        for p in conf.iterdir()
        if p.name not in (PROPERTIES_FILE, LOG4J_FILE)
        and (p.is_dir() or p.suffix in _READ_BY_SPARK)
    ]
    if others:
        log.debug("no class-data sharing: %s holds %s", conf, ", ".join(sorted(others)))
        return None
    archive = cache / f"spark-{environment_digest(spark_home, java)}.jsa"
    empty_conf = cache / "empty-conf"
    try:
        empty_conf.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.debug("no class-data sharing: cannot create %s (%s)", empty_conf, exc)
        return None
    if any(empty_conf.iterdir()):
        return None  # someone put files there: the JVM would refuse to write an archive
    writing = None
    if usable(archive):
        sharing = f"-XX:SharedArchiveFile={archive}"
    elif not may_write:
        return None
    else:
        writing = _claim_writer(archive)
        if writing is None:
            return None  # another run is writing it
        sharing = f"-XX:ArchiveClassesAtExit={writing}"
    options = [*_extra_java_options(conf / PROPERTIES_FILE), sharing, QUIET]
    if (conf / LOG4J_FILE).is_file():
        options.append(f"-Dlog4j2.configurationFile=file:{(conf / LOG4J_FILE).resolve()}")
    submit = (
        "--properties-file",
        str((conf / PROPERTIES_FILE).resolve()),
        "--driver-java-options",
        shlex.join(options),  # Spark parses it with shell-like quoting
    )
    env = {
        "SPARK_CONF_DIR": str(empty_conf),
        "PYSPARK_SUBMIT_ARGS": shlex.join([*submit, "pyspark-shell"]),
    }
    return Launch(env=env, archive=archive, writing=writing, submit_options=submit)


def usable(archive: Path) -> bool:
    """Whether ``archive`` starts like a dynamic CDS archive; removes it when it does not.

    The JVM checks the rest (JDK, class path, checksums) and ignores an archive that does
    not match; this catches a truncated or foreign file, which is then written anew.
    """
    try:
        with archive.open("rb") as f:
            if f.read(4) == DYNAMIC_MAGIC:
                return True
    except OSError:
        return False
    log.info("class-data sharing: %s is not a CDS archive; writing a new one", archive)
    archive.unlink(missing_ok=True)
    return False


def environment_digest(spark_home: Path, java: Path) -> str:
    """A digest of the JDK (its binary and class image) and of Spark's jars (names, sizes,
    modification times): what an archive's validity depends on."""
    h = hashlib.sha256()
    java = java.resolve()
    home = java.parent.parent
    for p in (java, home / "lib" / "modules"):
        h.update(_stat_line(p))
    jars = spark_home / "jars"
    if jars.is_dir():
        for p in sorted(jars.iterdir()):
            h.update(_stat_line(p))
    return h.hexdigest()[:16]


def _stat_line(path: Path) -> bytes:
    try:
        st = path.stat()
    except OSError:
        return f"{path}:-\n".encode()
    return f"{path}:{st.st_size}:{st.st_mtime_ns}\n".encode()


def _claim_writer(archive: Path) -> Path | None:
    """A temporary path for this run to write the archive to, or None when another run
    holds the writer's lock (taken atomically; a lock or temporary archive older than
    :data:`STALE_LOCK_SECONDS` is a crashed run's: the lock is taken over, the file removed)."""
    lock = archive.with_suffix(".lock")
    for old in [lock, *archive.parent.glob(f"{archive.stem}.*.tmp")]:  # a crashed run's
        try:
            if time.time() - old.stat().st_mtime > STALE_LOCK_SECONDS:
                old.unlink(missing_ok=True)
        except OSError:
            pass
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except OSError:
        return None
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return archive.with_name(f"{archive.stem}.{uuid.uuid4().hex}.tmp")


def finish_writing(launch: Launch, exit_code: int | None) -> bool:
    """After the JVM that wrote ``launch.writing`` exited with ``exit_code``: move the
    archive into place when it exited cleanly with one, else drop it. Releases the
    writer's lock. Returns whether the archive is now in place."""
    if launch.writing is None:
        return usable(launch.archive)
    done = exit_code == 0 and usable(launch.writing)
    try:
        if done:
            os.replace(launch.writing, launch.archive)
            log.info("class-data sharing: wrote %s for the next runs", launch.archive)
        else:
            launch.writing.unlink(missing_ok=True)
    except OSError as exc:  # a cache that is not ours to write: the next run tries again
        log.info("class-data sharing: could not keep %s (%s)", launch.archive, exc)
        done = False
    finally:
        launch.archive.with_suffix(".lock").unlink(missing_ok=True)
    return done


def wait_and_finish(launch: Launch, proc: subprocess.Popen | None) -> None:
    """Close the JVM's stdin (it exits on end of input, writing the archive) and wait for
    it, then :func:`finish_writing`. For ``atexit``."""
    if launch.writing is None:
        return
    code = None
    if proc is not None:
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            code = proc.wait(timeout=DUMP_WAIT_SECONDS)
        except (OSError, subprocess.TimeoutExpired):
            code = None
    finish_writing(launch, code)


def find_java(environ: Mapping[str, str]) -> Path | None:
    """The ``java`` Spark's scripts run: ``$JAVA_HOME/bin/java``, else the one on ``PATH``."""
    if environ.get("JAVA_HOME"):
        java = Path(environ["JAVA_HOME"]) / "bin" / "java"
        return java if java.is_file() else None
    found = shutil.which("java", path=environ.get("PATH"))
    return Path(found) if found else None


@contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``env`` set for the duration (the JVM's launch), then as before."""
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _extra_java_options(properties: Path) -> list[str]:
    """``spark.driver.extraJavaOptions`` of a properties file (``--driver-java-options``
    replaces it, so the launch carries it over)."""
    key = "spark.driver.extraJavaOptions"
    for line in properties.read_text().splitlines():
        line = line.strip()
        if line.startswith(key) and line[len(key) : len(key) + 1] in (" ", "\t", "="):
            return shlex.split(line[len(key) + 1 :].strip().lstrip("=").strip())
    return []
