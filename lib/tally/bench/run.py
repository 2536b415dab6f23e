"""Run the benchmark: the throughput table (one run, same data, same cores) and the memory mode.

Throughput: generate or reuse the datasets, run the floors (before Spark starts,
so that their process is just Python), start one SparkSession and warm it up,
run the Spark methods, compute the exact AUCs (untimed), print the table and
write ``docs/benchmarks.{md,json}``.

Memory: for each size, a fresh process (its own JVM) runs Tally binary and
reports its lifetime peak RSS, so sizes do not share a high-water mark.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tally.bench import data as datasets
from tally.bench import report
from tally.bench.methods import (
    BUCKETS,
    FINE_BUCKETS,
    METHOD_KEYS,
    METHODS,
    SLOW_LIMIT,
    Context,
    Method,
    Metrics,
    UnavailableError,
    exact_auc,
)
from tally.bench.probe import Probe, Sample, find_jvm, status_kib

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("tally.bench")

SKIP_REASONS = {
    "spark_ml": "Spark ML sorts every distinct score",
    "sklearn": "toPandas() holds every row on the driver",
}
WARM_UP = (
    "`spark.range(1e6)` sum, then Tally binary on the first 100,000 rows of the binary "
    "dataset, then Tally binary once with the arrow reader over the whole binary dataset "
    "(its Python workers import numpy, pyarrow and Tally; all untimed)"
)


@dataclass(frozen=True)
class Options:
    """What to run; the defaults are those of ``make bench``."""

    rows: int = 20_000_000
    data: Path = Path("data/bench")
    out: Path | None = Path("docs")
    repeats: int = 3
    #: section of benchmarks.json the throughput table replaces (e.g. throughput_1b)
    section: str = "throughput"
    repeat_budget: float | None = 600.0
    buckets: int = BUCKETS
    slow_limit: int = SLOW_LIMIT
    multilabel_cap: int = datasets.MULTILABEL_MAX_ROWS
    master: str = "local[*]"
    driver_memory: str = "4g"
    methods: tuple[str, ...] = METHOD_KEYS
    note: str = ""
    command: str = ""
    memory_rows: tuple[int, ...] = (1_000_000, 100_000_000)


def spark_conf(options: Options) -> dict[str, str]:
    """Spark settings of the benchmark session (they override ``conf/spark-defaults.conf``).

    * ``spark.driver.memory``: local mode runs every task in the driver JVM; 4g lets
      Spark ML sort 20M rows without spilling much. Tally needs far less (see the
      memory mode).
    * ``spark.sql.shuffle.partitions``: 2 per core. The count table has at most
      ``B + T + 8`` cells per group (65,544 for one score column), so 200 partitions
      would only add empty tasks (adaptive execution coalesces them anyway).
    * ``spark.sql.files.maxPartitionBytes``: 1 GiB (default 128 MB), as in
      ``conf/spark-defaults.conf``: fewer, longer scan tasks. Each task emits its own
      count table (for multi-label, K·B·(T+1) cells: up to 2.6M at K = 20), so fewer
      tasks mean fewer rows to merge: multi-label on 20M rows took 38 CPU-s in 2
      tasks against 46 CPU-s in 10 at 256 MB. Small inputs are still split across
      all cores (Spark caps splits at total bytes / cores).
    * Arrow for ``toPandas()`` (scikit-learn row); the in-memory catalog, so the
      benchmark neither needs nor locks the project's Derby metastore.
    """
    return {
        "spark.driver.memory": options.driver_memory,
        "spark.sql.shuffle.partitions": str(2 * _cores()),
        "spark.sql.files.maxPartitionBytes": str(1024 * 1024 * 1024),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.catalogImplementation": "in-memory",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
    }


#: Settings that can be changed on a running session (the rest need a new JVM).
RUNTIME_CONF = ("spark.sql.execution.arrow.pyspark.enabled",)


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def start_spark(options: Options) -> SparkSession:
    """A new local SparkSession with :func:`spark_conf` (one JVM for every Spark method)."""
    from pyspark.sql import SparkSession

    from tally.spark.session import prepare_local_environment

    prepare_local_environment()
    builder = SparkSession.builder.master(options.master).appName("tally-bench")
    for key, value in spark_conf(options).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


@contextmanager
def runtime_conf(spark: SparkSession, confs: dict[str, str]) -> Iterator[None]:
    """Set runtime SQL confs for a block (on a session the caller owns) and restore them."""
    before: dict[str, str | None] = {k: spark.conf.get(k, None) for k in confs}
    for k, v in confs.items():
        spark.conf.set(k, v)
    try:
        yield
    finally:
        for k, old in before.items():
            if old is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, old)


def jvm_gc(spark: SparkSession) -> Callable[[], None]:
    """A full garbage collection in the driver JVM (G1 then returns free heap to the OS)."""
    system = spark.sparkContext._jvm.java.lang.System  # type: ignore[union-attr]
    return lambda: system.gc()


def warm_up(spark: SparkSession, ctx: Context) -> None:
    """One small job of each kind before any measurement (JVM start, class loading, codegen)."""
    from tally.plan import ALL_ROWS, CountPlan
    from tally.spark.count import choose_reader, collect_count_groups, count_table

    spark.range(1_000_000).selectExpr("sum(id)").collect()
    plan = CountPlan(label="label", scores=("score",), buckets=ctx.buckets, thresholds=(0.5,))
    df = spark.read.parquet(str(ctx.binary.path)).limit(100_000)
    collect_count_groups(count_table(df, plan), plan)[("score", ALL_ROWS)]
    # The arrow reader's Python workers (one per core) import numpy, pyarrow and Tally once.
    from tally.config import InputConfig

    df = spark.read.parquet(str(ctx.binary.path))
    reader = choose_reader(spark, df, plan, InputConfig(path=str(ctx.binary.path)))
    collect_count_groups(count_table(df, plan, reader), plan)[("score", ALL_ROWS)]


# --- machine facts ---------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    return status_meminfo("MemTotal") / 2**20


def status_meminfo(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _java_version(spark: SparkSession | None) -> str:
    if spark is not None:
        system = spark.sparkContext._jvm.java.lang.System  # type: ignore[union-attr]
        return f"{system.getProperty('java.vendor')} {system.getProperty('java.version')}"
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
        return out.stderr.splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def machine_facts(spark: SparkSession | None) -> dict[str, str]:
    import pyspark

    facts = {
        "date (UTC)": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "CPU": _cpu_model(),
        "cores (usable / online)": f"{_cores()} / {os.cpu_count()}",
        "memory": f"{_memory_gib():.1f} GiB",
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "Spark": spark.version if spark is not None else pyspark.__version__,
        "Java": _java_version(spark),
        "numpy": np.__version__,
        "pyarrow": pa.__version__,
        "pandas": pd.__version__,
    }
    try:
        import sklearn

        facts["scikit-learn"] = sklearn.__version__
    except ImportError:
        pass
    return facts


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Result:
    """One method's measurements and metrics (a row of the table)."""

    method: Method
    rows: int
    status: str = "ok"  # ok | skipped | not available | failed
    note: str = ""
    samples: list[Sample] = field(default_factory=list)
    metrics: Metrics = field(default_factory=dict)

    @property
    def wall_s(self) -> float | None:
        return statistics.median(s.wall_s for s in self.samples) if self.samples else None

    @property
    def cpu_s(self) -> float | None:
        return statistics.median(s.cpu_s for s in self.samples) if self.samples else None

    @property
    def rows_per_cpu_s(self) -> float | None:
        cpu = self.cpu_s
        return self.rows / cpu if cpu else None

    def as_dict(self, floors: dict[str, Result]) -> dict[str, Any]:
        floor = floors.get(self.method.baseline)
        mine, base = self.rows_per_cpu_s, floor.rows_per_cpu_s if floor else None
        jvm = [s.peak_rss_jvm_mib for s in self.samples if s.peak_rss_jvm_mib is not None]
        return {
            "key": self.method.key,
            "label": self.method.label,
            "what": self.method.what,
            "dataset": self.method.dataset,
            "rows": self.rows,
            "status": self.status,
            "note": self.note,
            "runs": len(self.samples),
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "wall_s_all": [s.wall_s for s in self.samples],
            "cpu_s_all": [s.cpu_s for s in self.samples],
            "rows_per_cpu_s": mine,
            "vs_floor": mine / base if mine and base else None,
            # medians over the runs, as for time: a first run can inherit memory that
            # the previous method left in the JVM
            "peak_rss_python_mib": _median([s.peak_rss_python_mib for s in self.samples]),
            "peak_rss_jvm_mib": _median(jvm),
            "peak_rss_mib": _median([s.peak_rss_mib for s in self.samples]),
            "metrics": self.metrics,
        }


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _run_once(method: Method, ctx: Context, probe: Probe, result: Result) -> bool:
    """One timed run of ``method`` into ``result``; False when it failed or is not
    available (the row's status says which), and it is not run again."""
    try:
        with probe.measure() as m:
            metrics = method.run(ctx)
    except UnavailableError as exc:
        result.status, result.note = "not available", str(exc)
        log.info("%-40s %s", method.label, exc)
        return False
    except Exception as exc:  # a failed method is a row of the table, the run goes on
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        result.status, result.note = "failed", f"{type(exc).__name__}: {first[:300]}"
        log.error("%s failed:\n%s", method.label, traceback.format_exc())
        return False
    assert m.sample is not None
    result.samples.append(m.sample)
    result.metrics = metrics
    log.info(
        "%-40s run %d: %7.2f s wall, %7.2f s CPU, peak RSS %s MiB",
        method.label,
        len(result.samples),
        m.sample.wall_s,
        m.sample.cpu_s,
        f"{m.sample.peak_rss_mib:,.0f}",
    )
    return True


def measure_rounds(
    methods: Sequence[Method],
    ctx: Context,
    probe: Probe,
    repeats: int,
    budget_s: float | None = None,
) -> dict[str, Result]:
    """Run ``methods`` in rounds, each once per round, ``repeats`` rounds (a method's
    own ``repeats`` where set): methods compared as ratios then meet the same spells
    of a machine whose speed drifts over minutes (docs/benchmarks.md). Failures become
    the row's status, not an exception. A method whose first run takes longer than
    ``budget_s`` seconds is not repeated."""
    results: dict[str, Result] = {}
    running = []
    for method in methods:
        dataset = ctx.binary if method.dataset == "binary" else ctx.multilabel
        results[method.key] = Result(method, rows=dataset.rows if dataset else 0)
        running.append(method)
    for i in range(max((m.repeats or repeats) for m in methods) if methods else 0):
        for method in list(running):
            result = results[method.key]
            if i >= (method.repeats or repeats) or not _run_once(method, ctx, probe, result):
                running.remove(method)
                continue
            if budget_s is not None and i == 0 and result.samples[0].wall_s > budget_s:
                log.info("%s: first run took over %.0f s, not repeated", method.label, budget_s)
                running.remove(method)
    return results


def measure(
    method: Method, ctx: Context, probe: Probe, repeats: int, budget_s: float | None = None
) -> Result:
    """Run ``method`` ``repeats`` times (:func:`measure_rounds` of one method)."""
    return measure_rounds([method], ctx, probe, repeats, budget_s)[method.key]


def _headline(results: dict[str, Result]) -> list[str]:
    lines = []
    tally, ml, floor = results.get("tally"), results.get("spark_ml"), results.get("floor")
    if tally and tally.samples and ml and ml.samples:
        lines.append(
            f"Tally binary vs Spark ML: {ml.wall_s / tally.wall_s:,.0f}× less wall time, "  # type: ignore[operator]
            f"{ml.cpu_s / tally.cpu_s:,.0f}× less CPU."  # type: ignore[operator]
        )
    if tally and tally.samples and floor and floor.samples:
        lines.append(
            f"Tally binary vs the floor: {tally.cpu_s / floor.cpu_s:.1f}× the floor's CPU, "  # type: ignore[operator]
            f"{tally.wall_s / floor.wall_s:.1f}× its wall time."  # type: ignore[operator]
        )
    lines.extend(_exact_lines(results))
    return lines


#: Exact mode's rows of the table: (bucketed, exact, its lower bound, the scores).
EXACT_TRIPLES = (
    ("tally_ctr", "tally_ctr_exact", "tally_ctr_exact_floor", "float32"),
    ("tally_ctr64", "tally_ctr64_exact", "tally_ctr64_exact_floor", "float64"),
)


def run_groups(methods: Sequence[Method]) -> list[list[Method]]:
    """``methods`` in the groups they run in (:func:`measure_rounds`): the methods of
    each of :data:`EXACT_TRIPLES` together, in rounds, where the first of them stands;
    every other method alone."""
    triple_of = {key: n for n, triple in enumerate(EXACT_TRIPLES) for key in triple[:3]}
    groups: list[list[Method]] = []
    together: dict[int, list[Method]] = {}
    for method in methods:
        n = triple_of.get(method.key)
        if n is None:
            groups.append([method])
        elif n in together:
            together[n].append(method)
        else:
            together[n] = [method]
            groups.append(together[n])
    return groups


def paired_ratios(numerator: Result, denominator: Result) -> list[float]:
    """Per round, ``numerator``'s wall time over ``denominator``'s (runs in the same
    round of :func:`measure_rounds`, minutes apart at most); empty unless both ran
    the same number of rounds."""
    if not numerator.samples or len(numerator.samples) != len(denominator.samples):
        return []
    pairs = zip(numerator.samples, denominator.samples, strict=True)
    return [n.wall_s / d.wall_s for n, d in pairs]


def _exact_lines(results: dict[str, Result]) -> list[str]:
    """Per score type measured: exact mode's wall time over bucketed (issue 17's target:
    at most 2×) and over its lower bound (the same read shipping every valid row to
    reducers that only count them), medians of the same run, and its reads; with runs
    in rounds (:func:`measure_rounds`), also the median and range of each round's
    exact over bucketed."""
    lines = []
    for bucketed_key, exact_key, bound_key, scores in EXACT_TRIPLES:
        bucketed, exact = results.get(bucketed_key), results.get(exact_key)
        if not (bucketed and bucketed.samples and exact and exact.samples):
            continue
        line = (
            f"Exact AUC, `ctr_score` as {scores}: {exact.wall_s / bucketed.wall_s:.2f}× "  # type: ignore[operator]
            f"the bucketed wall time in {int(exact.metrics.get('passes', 0))} read(s)"
        )
        paired = paired_ratios(exact, bucketed)
        if len(paired) > 1:
            line += (
                f" (per round: median {statistics.median(paired):.2f}×, "
                f"{min(paired):.2f}–{max(paired):.2f}×)"
            )
        bound = results.get(bound_key)
        if bound and bound.samples:
            line += (
                f"; its lower bound {bound.wall_s / bucketed.wall_s:.2f}× bucketed, exact "  # type: ignore[operator]
                f"{exact.wall_s / bound.wall_s:.2f}× the bound"  # type: ignore[operator]
            )
        lines.append(line + ".")
    return lines


def _auc_rows(results: dict[str, Result], ctx: Context, limit: int) -> list[dict[str, Any]]:
    """Tally's AUC and bound per column, with the exact AUC (untimed) up to ``limit`` rows."""
    wanted = [
        ("tally", "score", ctx.buckets),
        ("tally_two_scores", "ctr_score", ctx.buckets),
        ("tally_ctr_fine", "ctr_score", FINE_BUCKETS),
        ("tally_ctr_exact", "ctr_score", 0),  # 0: metrics.auc exact
    ]
    exact: dict[str, float | None] = {}
    rows = []
    for key, column, buckets in wanted:
        r = results.get(key)
        if r is None or r.status != "ok":
            continue
        if column not in exact:
            exact[column] = None
            if ctx.spark is not None and ctx.binary.rows <= limit:
                try:
                    exact[column] = exact_auc(ctx, column)
                except Exception:  # the measurements are done: report them without it
                    log.error("exact AUC of %s failed:\n%s", column, traceback.format_exc())
        rows.append(
            {
                "column": column,
                "buckets": buckets,
                "roc_auc": r.metrics.get(f"roc_auc[{column}]"),
                "bound": r.metrics.get(f"roc_auc_error_bound[{column}]"),
                "exact": exact[column],
            }
        )
    return rows


def run_throughput(
    options: Options,
    spark: SparkSession | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Measure every selected method on the same data; returns the report payload.

    With ``spark`` given (e.g. a test's session) that session is used as it is,
    with the runtime settings of :func:`spark_conf` set for the run; otherwise a
    new one is started with all of them. Writes ``options.out`` unless it is None.
    """
    wanted = [m for m in METHODS if m.key in options.methods]
    binary = datasets.ensure(options.data, "binary", options.rows, log=say)
    multilabel_rows = min(options.rows, options.multilabel_cap)
    multilabel = (
        datasets.ensure(options.data, "multilabel", multilabel_rows, log=say)
        if any(m.dataset == "multilabel" for m in wanted)
        else None
    )
    ctx = Context(binary=binary, multilabel=multilabel, buckets=options.buckets)
    load_before = _load()
    probe = Probe()
    results: dict[str, Result] = {}

    def run(group: Sequence[Method]) -> None:
        runnable = []
        for method in group:
            if method.limited and options.rows > options.slow_limit:
                results[method.key] = Result(
                    method,
                    options.rows,
                    "skipped",
                    f"above {options.slow_limit:,} rows ({SKIP_REASONS.get(method.key, '')})",
                )
                say(f"{method.label}: skipped above {options.slow_limit:,} rows")
            else:
                runnable.append(method)
        results.update(measure_rounds(runnable, ctx, probe, options.repeats, options.repeat_budget))

    for method in wanted:  # untimed preparation (derived datasets)
        if method.prepare is not None:
            method.prepare(ctx)
    for method in wanted:  # the floors, before any JVM exists
        if not method.spark:
            run([method])
    spark_methods = [m for m in wanted if m.spark]
    own_session = spark is None and bool(spark_methods)
    if spark_methods:
        if spark is None:
            say(f"starting Spark ({options.master}, driver memory {options.driver_memory})")
            spark = start_spark(options)
        ctx = replace(ctx, spark=spark)
        probe.jvm_pid, probe.jvm_gc = find_jvm(spark), jvm_gc(spark)
        if probe.jvm_pid is None:
            say("warning: Spark JVM not found; CPU and RSS are the Python process's only")
        runtime = {k: v for k, v in spark_conf(options).items() if k in RUNTIME_CONF}
        with runtime_conf(spark, runtime):
            warm_up(spark, ctx)
            for group in run_groups(spark_methods):
                run(group)
            auc_rows = _auc_rows(results, ctx, options.slow_limit)
    else:
        auc_rows = []
    ordered = [results[m.key] for m in wanted]
    floors = {k: r for k, r in results.items() if k.startswith("floor") and r.samples}
    methods = [r.as_dict(floors) for r in ordered]
    conf = spark_conf(options)
    if spark is not None and not own_session:
        conf = {k: str(spark.conf.get(k, None)) for k in conf}
    payload: dict[str, Any] = {
        "generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": options.command or f"jobs/bench.py --rows {options.rows}",
        "rows": options.rows,
        "multilabel_rows": multilabel_rows,
        "multilabel_cap": options.multilabel_cap,
        "repeats": options.repeats,
        "repeat_budget": options.repeat_budget,
        "buckets": options.buckets,
        "slow_limit": options.slow_limit,
        "exact_aucs": options.rows <= options.slow_limit,
        "master": spark.sparkContext.master if spark is not None else options.master,
        "spark_conf": conf,
        "warm_up": WARM_UP,
        "note": options.note,
        "load_before": load_before,
        "load_after": _load(),
        "peak_reset": all(s.peak_reset for r in ordered for s in r.samples),
        "data": {
            "binary": str(binary.path),
            "multilabel": str(multilabel.path if multilabel else ""),
        },
        "machine": machine_facts(spark),
        "methods": methods,
        "auc": auc_rows,
        "headline": _headline(results),
    }
    if own_session and spark is not None:
        spark.stop()
    say("")
    say(report.console_table(methods))
    for line in payload["headline"]:
        say(line)
    for a in auc_rows:
        say(
            f"{a['column']:>10} @ {a['buckets']:>7} buckets: roc_auc {a['roc_auc']:.8f} "
            f"± {a['bound']:.2e}" + (f" (exact {a['exact']:.8f})" if a["exact"] is not None else "")
        )
    if options.out is not None:
        json_path, md_path = report.write(options.out, options.section, payload)
        say(f"wrote {md_path} and {json_path}")
    return payload


# --- memory mode -----------------------------------------------------------------------------


def jvm_heap(spark: SparkSession) -> dict[str, float]:
    """Committed heap now and the old generation's peak use (MiB), through JMX."""
    jvm: Any = spark.sparkContext._jvm
    runtime = jvm.java.lang.Runtime.getRuntime()
    out = {"jvm_heap_committed_mib": runtime.totalMemory() / 2**20}
    for pool in jvm.java.lang.management.ManagementFactory.getMemoryPoolMXBeans():
        if "Old Gen" in str(pool.getName()) or "Tenured" in str(pool.getName()):
            out["jvm_old_gen_peak_mib"] = pool.getPeakUsage().getUsed() / 2**20
    return out


def memory_child(options: Options, result_file: Path) -> None:
    """In a fresh process: Tally binary on ``options.rows`` rows; lifetime peaks to JSON."""
    from tally.bench.methods import tally_binary

    binary = datasets.cached(options.data, "binary", options.rows)
    if binary is None:
        raise FileNotFoundError(f"no {options.rows:,}-row binary dataset under {options.data}")
    spark = start_spark(options)
    ctx = Context(binary=binary, multilabel=None, spark=spark, buckets=options.buckets)
    probe = Probe(find_jvm(spark), jvm_gc(spark))
    warm_up(spark, ctx)
    samples: list[Sample] = []
    metrics: Metrics = {}
    for _ in range(options.repeats):
        with probe.measure() as m:
            metrics = tally_binary(ctx)
        assert m.sample is not None
        samples.append(m.sample)
    jvm = probe.jvm_pid
    python_peak = status_kib(os.getpid(), "VmHWM") / 1024
    jvm_peak = status_kib(jvm, "VmHWM") / 1024 if jvm else None
    out: dict[str, Any] = {
        "rows": options.rows,
        "status": "ok",
        "wall_s": statistics.median(s.wall_s for s in samples),
        "cpu_s": statistics.median(s.cpu_s for s in samples),
        # lifetime peaks: no reset in this process, JVM start and warm-up included
        "peak_rss_python_mib": python_peak,
        "peak_rss_jvm_mib": jvm_peak,
        "peak_rss_mib": python_peak + (jvm_peak or 0.0),
        "roc_auc": metrics.get("roc_auc[score]"),
        **jvm_heap(spark),
    }
    spark.stop()
    result_file.write_text(json.dumps(out))


def _child_args(options: Options, rows: int, result: Path) -> list[str]:
    return [
        sys.executable, "-m", "tally.bench", "--memory-child", "--result", str(result),
        "--rows", str(rows), "--data", str(options.data), "--repeats", str(options.repeats),
        "--buckets", str(options.buckets), "--master", options.master,
        "--driver-memory", options.driver_memory,
    ]  # fmt: skip


def run_memory(options: Options, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Tally binary at each of ``options.memory_rows`` rows, each in a fresh process."""
    import tally

    runs = []
    for rows in options.memory_rows:
        datasets.ensure(options.data, "binary", rows, log=say)
        env = dict(os.environ)
        source_root = str(Path(tally.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root, env.get("PYTHONPATH")]))
        with tempfile.TemporaryDirectory() as tmp:
            result = Path(tmp) / "result.json"
            say(f"memory: Tally binary on {rows:,} rows in a fresh process")
            done = subprocess.run(_child_args(options, rows, result), env=env, check=False)
            if done.returncode == 0 and result.is_file():
                run = json.loads(result.read_text())
            else:
                run = {"rows": rows, "status": "failed", "note": f"exit code {done.returncode}"}
        runs.append(run)
        if run["status"] == "ok":
            say(
                f"  {rows:>13,} rows: {run['wall_s']:.2f} s wall, peak RSS "
                f"{run['peak_rss_python_mib']:,.0f} (Python) + {run['peak_rss_jvm_mib']:,.0f} "
                f"(JVM) MiB, old gen peak {run.get('jvm_old_gen_peak_mib', 0):,.0f} MiB"
            )
    payload = {
        "generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": options.command
        or "jobs/bench.py --memory --memory-rows " + ",".join(map(str, options.memory_rows)),
        "driver_memory": options.driver_memory,
        "master": options.master,
        "repeats": options.repeats,
        "note": options.note,
        "machine": machine_facts(None),
        "runs": runs,
    }
    if options.out is not None:
        json_path, md_path = report.write(options.out, "memory", payload)
        say(f"wrote {md_path} and {json_path}")
    return payload


# --- command line ----------------------------------------------------------------------------


def run_partition_filter(options: Options, days: int, say: Callable[[str], None] = print) -> None:
    """``--partitions DAYS``: :func:`tally.bench.partitions.run_partitions`, written to the
    report's ``partitions`` section."""
    from tally.bench.partitions import run_partitions

    spark = start_spark(options)
    try:
        root = options.data / f"partitions-{days}x{options.rows // days}"
        payload = run_partitions(spark, root, days, options.rows // days, options.repeats)
    finally:
        spark.stop()
    payload["command"] = options.command
    payload["note"] = options.note
    for c in payload["cases"]:
        say(f"{c['case']:12} {c['files']:>5} files {c['wall_s']:8.2f} s ({c['reader']})")
    say(f"whole/one night: {payload['files_ratio']:.0f}x files, {payload['wall_ratio']:.1f}x wall")
    if options.out is not None:
        for path in report.write(options.out, "partitions", payload):
            say(f"wrote {path}")


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(float(x)) for x in text.split(",") if x.strip())


def _methods(text: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = sorted(set(keys) - set(METHOD_KEYS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {', '.join(METHOD_KEYS)}")
    return keys


def _without_note(argv: Sequence[str]) -> list[str]:
    """The arguments minus ``--note`` (the report prints the note on its own)."""
    shown: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--note":
            skip = True
        elif not arg.startswith("--note="):
            shown.append(arg)
    return shown


def main(argv: Sequence[str] | None = None) -> int:
    """``jobs/bench.py``: see ``--help``."""
    import argparse

    p = argparse.ArgumentParser(
        prog="jobs/bench.py",
        description="Benchmark Tally against the pyarrow + numpy floor, Spark ML and "
        "scikit-learn on the same generated data; writes docs/benchmarks.{md,json}.",
    )
    p.add_argument(
        "--rows",
        type=lambda x: int(float(x)),
        default=Options.rows,
        help="rows of the binary dataset (default 20M; 1e9 works, ~10 GB on disk)",
    )
    p.add_argument("--data", type=Path, default=Options.data, help="dataset cache folder")
    p.add_argument(
        "--out", type=Path, default=Options.out, help="folder for benchmarks.md/json (default docs)"
    )
    p.add_argument("--no-write", action="store_true", help="print only, write no report")
    p.add_argument("--repeats", type=int, default=Options.repeats, help="runs per method")
    p.add_argument(
        "--section",
        default=Options.section,
        help="report section the throughput table replaces (default throughput; e.g. "
        "throughput_1b keeps a billion-row run beside the 20M one)",
    )
    p.add_argument(
        "--repeat-budget",
        type=float,
        default=Options.repeat_budget,
        help="a method whose first run takes longer than this many seconds runs once (default 600)",
    )
    p.add_argument("--buckets", type=int, default=Options.buckets)
    p.add_argument(
        "--slow-limit",
        type=int,
        default=Options.slow_limit,
        help="Spark ML and scikit-learn run up to this many rows",
    )
    p.add_argument("--master", default=Options.master)
    p.add_argument("--driver-memory", default=Options.driver_memory)
    p.add_argument(
        "--methods",
        type=_methods,
        default=Options.methods,
        help=f"comma-separated subset of: {', '.join(METHOD_KEYS)}",
    )
    p.add_argument("--note", default="", help="a line for the report (e.g. 'machine shared')")
    p.add_argument(
        "--memory",
        action="store_true",
        help="memory mode: Tally binary at each of --memory-rows, fresh process each",
    )
    p.add_argument(
        "--memory-rows",
        type=_sizes,
        default=Options.memory_rows,
        help="comma-separated sizes for --memory (default 1000000,100000000)",
    )
    p.add_argument(
        "--partitions",
        type=int,
        metavar="DAYS",
        help="partition mode: DAYS daily folders of --rows/DAYS rows each; the whole table "
        "against its last day under input.where (files read and wall)",
    )
    p.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    command = shlex.join(
        ["jobs/bench.py", *_without_note(argv if argv is not None else sys.argv[1:])]
    )
    options = Options(
        rows=args.rows,
        data=args.data,
        out=None if args.no_write else args.out,
        repeats=args.repeats,
        section=args.section,
        repeat_budget=args.repeat_budget,
        buckets=args.buckets,
        slow_limit=args.slow_limit,
        master=args.master,
        driver_memory=args.driver_memory,
        methods=args.methods,
        note=args.note,
        command=command.strip(),
        memory_rows=args.memory_rows,
    )
    if args.memory_child:
        memory_child(options, args.result)
    elif args.memory:
        run_memory(options)
    elif args.partitions:
        run_partition_filter(options, args.partitions)
    else:
        run_throughput(options)
    return 0
