"""Render benchmark results: a console table, ``docs/benchmarks.json`` and ``docs/benchmarks.md``.

The JSON file has one key per mode (``throughput``, ``memory``); a run replaces
its own key and keeps the other, and the Markdown file is rendered from the
whole JSON, so both modes can be rerun independently.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

JSON_NAME = "benchmarks.json"
MD_NAME = "benchmarks.md"
#: Everything from this line on in benchmarks.md is written by hand and kept by :func:`write`.
HAND_WRITTEN_MARKER = "<!-- Hand-written from here on"

Payload = dict[str, Any]


def seconds(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def rate(x: float | None) -> str:
    """Rows per CPU-second, in millions."""
    return "–" if x is None else f"{x / 1e6:,.2f} M" if x < 1e8 else f"{x / 1e6:,.0f} M"


def relative(x: float | None) -> str:
    """A throughput ratio: ``1.00`` for the floor, ``1/23`` for 23 times the floor's CPU."""
    if x is None or x <= 0 or math.isnan(x):
        return "–"
    return f"{x:.2f}" if x >= 0.995 else f"1/{1 / x:.3g}"


def mib(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def auc(x: float | None, digits: int = 6) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def sci(x: float | None) -> str:
    return "–" if x is None else f"{x:.2e}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(rule) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def method_rows(methods: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the throughput table."""
    header = [
        "method",
        "rows",
        "wall s",
        "CPU s",
        "rows / CPU-s",
        "vs floor",
        "peak RSS MiB (Python + JVM)",
        "ROC AUC",
    ]
    rows = []
    for m in methods:
        if m["status"] != "ok":
            rows.append(
                [
                    m["label"],
                    f"{m['rows']:,}",
                    m["status"] + ": " + (m["note"] or ""),
                    "",
                    "",
                    "",
                    "",
                    "",
                ]
            )
            continue
        jvm = m["peak_rss_jvm_mib"]
        rss = mib(m["peak_rss_python_mib"]) + (f" + {mib(jvm)}" if jvm is not None else "")
        metrics = m["metrics"]
        value = metrics.get("roc_auc[score]", metrics.get("roc_auc[ctr_score]"))
        value = metrics.get("macro_roc_auc", value)
        runs = f" (n={m['runs']})" if m["runs"] != 1 else " (n=1)"
        rows.append(
            [
                m["label"],
                f"{m['rows']:,}",
                seconds(m["wall_s"]) + runs,
                seconds(m["cpu_s"]),
                rate(m["rows_per_cpu_s"]),
                relative(m["vs_floor"]),
                rss,
                auc(value),
            ]
        )
    return header, rows


def console_table(methods: Sequence[Mapping[str, Any]]) -> str:
    """The throughput table as aligned plain text."""
    header, rows = method_rows(methods)
    cells = [header, *rows]
    widths = [max(len(r[i]) for r in cells if len(r) > i) for i in range(len(header))]
    lines = []
    for r in cells:
        if r[2] and not r[3] and r[1]:  # a status line spans the metric columns
            lines.append(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]}")
        else:
            lines.append(
                "  ".join(
                    c.ljust(w) if i == 0 else c.rjust(w)
                    for i, (c, w) in enumerate(zip(r, widths, strict=True))
                )
            )
    return "\n".join(lines)


def _facts(machine: Mapping[str, Any]) -> list[str]:
    return _table(["fact", "value"], [[k, str(v)] for k, v in machine.items()], "ll")


def throughput_md(t: Mapping[str, Any], section: str = "throughput") -> list[str]:
    named = "" if section == "throughput" else f" (section `{section}`)"
    multilabel = any(m.get("dataset") == "multilabel" for m in t.get("methods", []))
    out = [
        f"## Throughput: {t['rows']:,} rows{named}",
        "",
        f"`{t['command']}`, {t['generated']}."
        + (
            f" Multi-label rows: {t['multilabel_rows']:,} (the multi-label dataset is capped "
            f"at {t['multilabel_cap']:,} rows: 20 floats and 20 labels per row do not fit a "
            "billion rows on this disk)."
            if multilabel
            else ""
        )
        + f" Load average (1/5/15 min) before: {t['load_before']}, after: {t['load_after']}.",
    ]
    if t.get("note"):
        out += ["", f"**Note:** {t['note']}"]
    header, rows = method_rows(t["methods"])
    out += ["", *_table(header, rows)]
    out += [
        "",
        f"wall and CPU: median of n runs (n = {t['repeats']}; a method whose first run "
        f"takes over {t.get('repeat_budget') or 0:.0f} s runs once; a score type's "
        "bucketed, exact and lower-bound rows run in rounds, one run of each per round); "
        "CPU = Python "
        "process + Spark JVM + every process below either, e.g. Python workers (`utime + "
        "stime` from `/proc/<pid>/stat`, read every 0.25 s so that workers that exit still "
        "count); rows / CPU-s relative to "
        "the floor of the same dataset (`vs floor`, 1/23 = 23 times the floor's CPU per row); "
        "peak RSS: `VmHWM` of the Python process and of the JVM, reset before each run "
        f"(reset {'worked' if t['peak_reset'] else 'refused: lifetime peaks'}) after a "
        "full GC in both, median of the runs; the JVM's includes heap it committed for "
        "earlier methods and kept (the memory mode below runs fresh processes). "
        "ROC AUC: of `score` (multi-label rows: macro ROC AUC over the 20 classes).",
    ]
    if t.get("headline"):
        out += ["", *(f"- {line}" for line in t["headline"])]
    out += ["", "### ROC AUC and its error bound (uniform buckets on a peaked score)", ""]
    out += _table(
        [
            "column",
            "buckets",
            "Tally roc_auc",
            "roc_auc_error_bound",
            "exact (scikit-learn)",
            "\\|Tally − exact\\|",
        ],
        [
            [
                a["column"],
                f"2^{int(math.log2(a['buckets']))}" if a["buckets"] else "exact mode",
                auc(a["roc_auc"], 8),
                sci(a["bound"]),
                auc(a["exact"], 8),
                sci(
                    None
                    if a["exact"] is None or a["roc_auc"] is None
                    else abs(a["roc_auc"] - a["exact"])
                ),
            ]
            for a in t["auc"]
        ],
        "lrrrrr",
    )
    out += [
        "",
        "`ctr_score` (mean ≈ 0.02, median ≈ 0.012) puts almost every row in the lowest few "
        "thousand of the 65,536 uniform buckets, so many positive/negative pairs share a "
        "bucket and count as ties: its bound is far wider than for the broad `score`. The "
        "exact AUC is always within the bound. For such scores raise `metrics.buckets` "
        "(up to 2^22) or evaluate a transformed score (e.g. its rank or a log scale)."
        + (
            ""
            if t["exact_aucs"]
            else f" (Exact AUCs are computed up to {t['slow_limit']:,} rows only.)"
        ),
        "",
        "### What is timed",
        "",
        *(f"- **{m['label']}**: {m['what']}" for m in t["methods"]),
        "",
        "### Setup",
        "",
        f"- One SparkSession for every Spark method (`{t['master']}`), warmed up before the "
        f"first measurement: {t['warm_up']}.",
        "- Spark settings of the benchmark (over `conf/spark-defaults.conf`): "
        + ", ".join(f"`{k}={v}`" for k, v in t["spark_conf"].items())
        + ".",
        "- Data: "
        + " and ".join(f"`{path}`" for path in t["data"].values() if path)
        + " (generated once, "
        "cached; see `tally.bench.data`). Files are read through the OS page cache: after "
        "the first run they are usually in memory when they fit.",
        f"- Methods that hold every row (Spark ML sorts them, `toPandas()` collects them) run "
        f"up to {t['slow_limit']:,} rows and are skipped above.",
        "",
        "Machine:",
        "",
        *_facts(t["machine"]),
    ]
    return out


def memory_md(m: Mapping[str, Any]) -> list[str]:
    out = [
        "## Memory: driver peak RSS of Tally binary vs rows",
        "",
        f"`{m['command']}`, {m['generated']}. Each size runs in a fresh process (its own "
        f"JVM, `spark.driver.memory={m['driver_memory']}`, `{m['master']}`): start Spark, "
        f"warm up, run Tally binary {m['repeats']} time(s). Peak RSS is the lifetime `VmHWM` "
        "of the Python process and of the JVM (JVM start-up and warm-up included); JVM heap: "
        "committed heap at the end, and the peak of the old generation (what survives young "
        "collections: data the job holds on to).",
    ]
    if m.get("note"):
        out += ["", f"**Note:** {m['note']}"]
    out += [""]
    out += _table(
        [
            "rows",
            "wall s",
            "CPU s",
            "peak RSS Python MiB",
            "peak RSS JVM MiB",
            "sum MiB",
            "JVM heap committed MiB",
            "JVM old gen peak MiB",
            "ROC AUC",
        ],
        [
            [
                f"{r['rows']:,}",
                seconds(r["wall_s"]),
                seconds(r["cpu_s"]),
                mib(r["peak_rss_python_mib"]),
                mib(r["peak_rss_jvm_mib"]),
                mib(r["peak_rss_mib"]),
                mib(r.get("jvm_heap_committed_mib")),
                mib(r.get("jvm_old_gen_peak_mib")),
                auc(r.get("roc_auc")),
            ]
            if r["status"] == "ok"
            else [f"{r['rows']:,}", r["status"] + ": " + (r.get("note") or ""), *[""] * 7]
            for r in m["runs"]
        ],
    )
    out += ["", "Machine:", "", *_facts(m["machine"])]
    return out


def render(payload: Mapping[str, Any]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` / `make bench-memory` (`jobs/bench.py`, code in "
        "`lib/tally/bench/`); `docs/benchmarks.json` holds the same numbers. Rerun rather "
        "than edit. Issue 5: race the single-process floor, beat Spark ML by two orders of "
        "magnitude, prove flat memory.",
        "",
        "```bash",
        "make bench ROWS=20000000           # the table below (ROWS defaults to 20M)",
        "make bench-memory                  # driver peak RSS at 1M and 100M rows",
        ".venv/bin/python jobs/bench.py --help",
        "```",
        "",
    ]
    for section in sorted(k for k in payload if k.startswith("throughput")):
        lines += [*throughput_md(payload[section], section), ""]  # e.g. throughput_1b
    if "memory" in payload:
        lines += [*memory_md(payload["memory"]), ""]
    if "partitions" in payload:
        lines += [*partitions_md(payload["partitions"]), ""]
    return "\n".join(lines)


def partitions_md(p: Mapping[str, Any]) -> list[str]:
    """The one-night-of-N table (:mod:`tally.bench.partitions`)."""
    rows = [
        [c["case"], f"`{c['where']}`" if c["where"] else "none", c["reader"], f"{c['files']:,}",
         f"{c['rows']:,}", seconds(c["wall_s"])]
        for c in p["cases"]
    ]
    return [
        f"## One night of {p['days']}: partition filter (`{p.get('command', '')}`)",
        "",
        f"{p['days']} daily folders `ds=…` of {p['rows_per_day']:,} rows in "
        f"{p['files_per_day']} files each; the job's own steps (select, choose the reader, "
        f"count and measure), median wall of {p['repeats']} after a warm-up.",
        "",
        *_table(["run", "input.where", "reader", "files read", "rows", "wall"], rows, "lllrrr"),
        "",
        f"Whole table / one night: **{p['files_ratio']:.0f}×** the files, "
        f"**{p['wall_ratio']:.1f}×** the wall time.",
        *([f"Note: {p['note']}"] if p.get("note") else []),
    ]


def write(out_dir: Path, section: str, data: Payload) -> tuple[Path, Path]:
    """Replace ``section`` of ``<out_dir>/benchmarks.json`` and re-render the Markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / JSON_NAME, out_dir / MD_NAME
    try:
        payload = json.loads(json_path.read_text())
    except (OSError, ValueError):
        payload = {}
    payload[section] = data
    json_path.write_text(json.dumps(payload, indent=1, sort_keys=False) + "\n")
    md_path.write_text(render(payload) + hand_written_part(md_path))
    return json_path, md_path


def hand_written_part(md_path: Path) -> str:
    """The part of ``md_path`` from :data:`HAND_WRITTEN_MARKER` on, after a blank line; or ''."""
    try:
        text = md_path.read_text()
    except OSError:
        return ""
    start = text.find(HAND_WRITTEN_MARKER)
    return "" if start < 0 else "\n" + text[start:]
