"""Helpers shared by the test modules: Spark conf dirs and environments for the jobs that tests
start as subprocesses, per-row references (DeLong's test on the rows, the validity rules), test
data, and small conveniences for metric lists.

Fixtures live in ``conftest.py``; this module holds plain functions and constants, imported as
``from helpers import ...`` (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import fcntl
import math
import os
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from statistics import NormalDist
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tally.counts import bucket_of
from tally.metrics import MetricValue

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: the venv's scripts: ``tally``, ``spark-submit``
BIN = Path(sys.executable).parent

#: JVM options of every JVM the tests start (the session's and the `tally` / `spark-submit`
#: subprocesses'): C1 only (no C2 JIT). Each runs small queries, mostly new code to compile,
#: so compiling fast beats compiling well. C1 alone gets a 48 MiB code cache by default,
#: which Spark fills: the JVM then flushes compiled methods and compiles them again (and
#: warns "CodeCache is full"), so the cache is given the size tiered compilation has.
#: The serial collector: a test's heap holds little, and G1's concurrent threads cost CPU
#: that the two xdist workers share. Results depend on none of these. Figures:
#: docs/benchmarks.md, "Fewer JVM starts, and a code cache that holds Spark" and "Fewer
#: processes, and the serial collector".
TEST_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m -XX:+UseSerialGC"


def spark_defaults(path: Path = PROJECT_ROOT / "conf" / "spark-defaults.conf") -> dict[str, str]:
    """The settings of a ``spark-defaults.conf``; by default the project's (what users' jobs
    run with)."""
    settings = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, value = line.split(None, 1)
            settings[key] = value.strip()
    return settings


def write_spark_conf(base: Path, java_options: str = "") -> Path:
    """A Spark conf dir like the project's ``conf/``: its settings (the tests run what users
    run), with the catalog and warehouse under ``base``, 2 shuffle partitions, and the
    driver's JVM options with ``TEST_JAVA_OPTIONS`` and ``java_options`` added."""
    conf_dir = base / "conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    project = spark_defaults()
    java_options = (
        f"{project.get('spark.driver.extraJavaOptions', '')} {TEST_JAVA_OPTIONS} {java_options}"
    )
    settings = {
        **project,
        "spark.sql.warehouse.dir": str(base / "warehouse"),
        "spark.hadoop.javax.jdo.option.ConnectionURL": (
            f"jdbc:derby:;databaseName={base / 'metastore_db'};create=true"
        ),
        "spark.sql.shuffle.partitions": "2",
        "spark.driver.extraJavaOptions": java_options.strip(),
    }
    (conf_dir / "spark-defaults.conf").write_text(
        "".join(f"{key} {value}\n" for key, value in settings.items())
    )
    shutil.copy(PROJECT_ROOT / "conf" / "log4j2.properties", conf_dir / "log4j2.properties")
    return conf_dir


def spark_submit_sharing(conf_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """How a test's ``spark-submit`` starts its driver JVM with class-data sharing, as `tally`
    starts its own (:mod:`tally.spark.class_sharing`): the Spark properties to pass with
    ``--conf`` and the environment to set.

    Spark puts ``$SPARK_CONF_DIR`` first on the driver's class path, and an archive holds
    only for the class path it was written with (an empty conf directory first), so the
    conf directory's settings travel as ``--conf`` properties (the same settings) and
    ``SPARK_CONF_DIR`` is that empty directory. Without an archive (no `tally` run has
    written one yet) or where sharing does not apply, the settings stay in ``conf_dir``
    and the JVM starts as usual. Only the JVM's start differs; the job runs the same.
    """
    from pyspark.find_spark_home import _find_spark_home

    from tally.spark import class_sharing

    environ = {k: v for k, v in os.environ.items()
               if k not in ("PYSPARK_SUBMIT_ARGS", "PYSPARK_GATEWAY_PORT")}
    launch = class_sharing.plan_launch(
        {**environ, "SPARK_CONF_DIR": str(conf_dir)},
        Path(_find_spark_home()),
        class_sharing.find_java(environ),
        class_sharing.cache_dir(),
        may_write=False,  # leaves the writing to a `tally` run
    )
    if launch is None:
        return {}, {"SPARK_CONF_DIR": str(conf_dir)}
    submit = launch.submit_options
    properties = spark_defaults(conf_dir / "spark-defaults.conf")
    properties["spark.driver.extraJavaOptions"] = submit[submit.index("--driver-java-options") + 1]
    return properties, {"SPARK_CONF_DIR": launch.env["SPARK_CONF_DIR"]}


def job_env(base: Path, **extra: str) -> dict[str, str]:
    """The environment of a `tally` / `spark-submit` subprocess: this process's, with a Spark
    conf dir (catalog and warehouse under ``base``) and Python workers on this interpreter."""
    return {
        **os.environ,
        "SPARK_CONF_DIR": str(write_spark_conf(base)),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        **extra,
    }


def steps_of_batch(
    done: subprocess.CompletedProcess, names: Iterable[str]
) -> dict[str, subprocess.CompletedProcess]:
    """The steps of a `tally batch` run (one JVM), each as if its command had run alone: its
    exit code from the batch's log line ``batch step NAME: exit CODE``, its part of stderr
    (from its own ``batch step NAME: tally ...`` line to the next step's), and the batch's
    stdout (each step prints in turn: give one step that prints per batch)."""
    names = list(names)
    starts = [done.stderr.index(f"batch step {name}: tally ") for name in names]
    ends = [*starts[1:], len(done.stderr)]
    steps = {}
    for name, start, end in zip(names, starts, ends, strict=True):
        stderr = done.stderr[start:end]
        [code] = re.findall(rf"batch step {re.escape(name)}: exit (\d+)", stderr)
        steps[name] = subprocess.CompletedProcess(done.args, int(code), done.stdout, stderr)
    return steps


def package(dest: Path) -> Path:
    """`make package`, its zip copied into ``dest``; the wheel must be built too.

    Holds a lock on ``dist/`` while it builds and copies: tests in other pytest-xdist
    workers may run `make package` at the same time, and it deletes the old zip first.
    """
    import tally

    (PROJECT_ROOT / "dist").mkdir(exist_ok=True)
    with open(PROJECT_ROOT / "dist" / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = subprocess.run(["make", "--no-print-directory", "package"], cwd=PROJECT_ROOT,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        built = PROJECT_ROOT / "dist" / f"tally-{tally.__version__}.zip"
        assert built.is_file()
        assert list((PROJECT_ROOT / "dist").glob(f"tally-{tally.__version__}-*.whl"))
        return Path(shutil.copy(built, dest / built.name))


def write_parquet(path: Path, columns: dict[str, pa.Array], files: int = 1) -> str:
    """The columns as ``files`` Parquet files of consecutive rows in folder ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    table = pa.table(columns)
    bounds = [i * table.num_rows // files for i in range(files + 1)]
    for i in range(files):
        part = table.slice(bounds[i], bounds[i + 1] - bounds[i])
        pq.write_table(part, path / f"part-{i}.parquet")
    return str(path)


#: pyarrow's words for a Parquet file whose footer is gone (:func:`corrupt_footer`)
PYARROW_SAYS = (
    "Parquet magic bytes not found in footer. Either the file is corrupted or this is not a "
    "parquet file."
)


def corrupt_footer(uri: str) -> None:
    """Zero the last 8 bytes (Parquet's footer length and ``PAR1`` magic) of the file at
    ``uri`` (a ``file:`` URI, as Spark lists it): a half-written file, the same size."""
    with open("/" + uri.removeprefix("file:").lstrip("/"), "r+b") as f:
        f.seek(-8, os.SEEK_END)
        f.write(b"\0" * 8)


# --- metric lists ------------------------------------------------------------------------------


def by_name(
    values: list[MetricValue], names: Iterable[str] | None = None
) -> dict[str, MetricValue]:
    """The metric values keyed by name; each name once, in the order ``names`` when given."""
    got = [v.metric for v in values]
    assert len(set(got)) == len(got), got
    if names is not None:
        assert got == list(names)
    return {v.metric: v for v in values}


def assert_undefined(m: MetricValue) -> None:
    """Null, with a reason."""
    assert m.value is None, m
    assert isinstance(m.reason, str) and m.reason.strip(), m


T = TypeVar("T")


def quiet(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call sklearn without its warnings about undefined metrics / absent classes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# --- rows --------------------------------------------------------------------------------------


def is_valid(y: np.ndarray, s: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Rows every binary metric uses (NaN stands for null in ``y``, ``s`` and ``w``)."""
    ok = ~np.isnan(y) & ~np.isnan(s) & (s >= 0) & (s <= 1) & ((y == 0) | (y == 1))
    if w is not None:
        ok &= np.isfinite(w) & (w >= 0)
    return ok


def class_names(k: int) -> tuple[str, ...]:
    return tuple(f"c{i}" for i in range(k))


def multilabel_rows(seed: int, n: int, k: int, decimals: int | None = 2):
    """(n, k) 0/1 labels and scores with signal; scores rounded to ``decimals`` tie."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, k)) < rng.uniform(0.05, 0.6, k)).astype(np.int64)
    s = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0.0, 1.0)
    if decimals is not None:
        s = np.round(s, decimals)
    return y, s


def on_buckets(raw: np.ndarray, buckets: int) -> np.ndarray:
    """Scores ``k / B``: one exact value per bucket (checked with ``bucket_of``)."""
    k = np.clip(np.floor(np.clip(raw, 0, 1) * buckets), 0, buckets - 1).astype(np.int64)
    s = k / buckets
    assert np.array_equal(bucket_of(s, buckets), k)
    return s


def paired_rows(seed: int, n: int, buckets1: int, buckets2: int, rate: float, rho: float):
    """Labels and two correlated score columns, each on its own bucket values ``k / B``."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(np.int64)
    common = rng.normal(size=n)
    e1 = rho * common + math.sqrt(1 - rho * rho) * rng.normal(size=n)
    e2 = rho * common + math.sqrt(1 - rho * rho) * rng.normal(size=n)
    raw1 = 0.35 + 0.25 * y + 0.2 * e1
    raw2 = 0.35 + 0.20 * y + 0.2 * e2
    return y, on_buckets(raw1, buckets1), on_buckets(raw2, buckets2)


# --- DeLong's test on the rows (DeLong, DeLong & Clarke-Pearson 1988) ---------------------------


def row_placements(
    y: np.ndarray, s: np.ndarray, w: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """V10 of each positive, V01 of each negative: over the other class, the (weighted) mean of
    ψ(X, Y) = 1 if X > Y, ½ if X = Y, else 0, from a P × N matrix of pair comparisons."""
    w = np.ones(y.size) if w is None else w
    x, wx = s[y == 1][:, None], w[y == 1][:, None]
    z, wz = s[y == 0][None, :], w[y == 0][None, :]
    kernel = (x > z) + 0.5 * (x == z)
    return (kernel * wz).sum(axis=1) / wz.sum(), (kernel * wx).sum(axis=0) / wx.sum()


def row_paired(
    y: np.ndarray, s1: np.ndarray, s2: np.ndarray, w: np.ndarray | None = None
) -> tuple[float, float, float]:
    """(AUC¹ − AUC², variance of the difference, two-sided p) of DeLong's paired test.

    ``w`` are frequency weights: the result is that of each row repeated ``w`` times.
    """
    w = np.ones(y.size) if w is None else w
    a10, a01 = row_placements(y, s1, w)
    c10, c01 = row_placements(y, s2, w)
    w10, w01 = w[y == 1], w[y == 0]
    cov = _weighted_cov(a10, c10, w10) / w10.sum() + _weighted_cov(a01, c01, w01) / w01.sum()
    contrast = np.array([1.0, -1.0])
    variance = float(contrast @ cov @ contrast)
    diff = float(np.dot(w10, a10) / w10.sum() - np.dot(w10, c10) / w10.sum())
    z = diff / math.sqrt(variance)
    return diff, variance, 2 * NormalDist().cdf(-abs(z))


def _weighted_cov(a: np.ndarray, c: np.ndarray, w: np.ndarray) -> np.ndarray:
    """2 × 2 sample covariance with frequency weights (divisor Σw − 1)."""
    x = np.vstack([a, c])
    mean = x @ w / w.sum()
    d = x - mean[:, None]
    return (d * w) @ d.T / (w.sum() - 1)
