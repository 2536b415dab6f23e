"""``tally report``: one self-contained HTML page for one model and run date.

The page is built from the results table and the curves table only (no input
scan): for each score column a headline table, the ROC curve (AUC ± its error
bound and the DeLong CI), the precision-recall curve, the reliability diagram
(with ECE/MCE), the thresholded metrics, the slices from worst ROC AUC, and the
trend of the headline metrics over the last ``days`` days of nightly runs
(``window_days = 1``). When the checks table has rows for the run, the page opens
with them: failed first, each value against its limit.

Plots are inline SVG drawn here (no plotting library, no JavaScript, no external
resource), so the file opens anywhere and can be mailed or archived as is.
User values never reach SQL text: rows are selected with DataFrame filters on
literals, and every name or value put in the page is HTML-escaped.
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tally.checks import Outcome
from tally.errors import InputError
from tally.plan import ALL_ROWS

#: metrics drawn in the trend section, in page order
TREND_METRICS = ("roc_auc", "pr_auc", "log_loss", "count")
#: columns of the threshold table, in page order
THRESHOLD_METRICS = ("tp", "fp", "tn", "fn", "precision", "recall", "f1", "accuracy", "mcc")
#: columns of the slice table after the slice name
SLICE_METRICS = ("count", "roc_auc", "pr_auc", "log_loss")
#: rows of the headline table: (label, metric)
HEADLINE_METRICS = (
    ("rows", "count"),
    ("positives", "positives"),
    ("negatives", "negatives"),
    ("invalid rows", "invalid_rows"),
    ("ROC AUC", "roc_auc"),
    ("ROC AUC error bound", "roc_auc_error_bound"),
    ("ROC AUC CI low (DeLong)", "roc_auc_ci_low"),
    ("ROC AUC CI high (DeLong)", "roc_auc_ci_high"),
    ("PR AUC (average precision)", "pr_auc"),
    ("log loss", "log_loss"),
    ("Brier score", "brier"),
    ("ECE", "ece"),
    ("MCE", "mce"),
    ("best F1", "best_f1"),
    ("best F1 threshold", "best_f1_threshold"),
)
#: metrics whose values are counts (shown without decimals when integral)
COUNT_METRICS = frozenset(
    {"count", "positives", "negatives", "invalid_rows", "tp", "fp", "tn", "fn"}
)

_clip_ids = itertools.count()

# Colours (colour-blind safe: Okabe-Ito)
BLUE, ORANGE, GREEN, GREY, VERMILION = "#0072B2", "#E69F00", "#009E73", "#888888", "#D55E00"


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Metric:
    """One number of the results table (value None where undefined, with the reason)."""

    value: float | None
    reason: str | None = None


@dataclass
class ScoreData:
    """Everything the page shows for one score column."""

    name: str
    #: (slice, metric, threshold) -> value, for the run date, class-less rows only
    metrics: dict[tuple[str, str, float | None], Metric] = field(default_factory=dict)
    #: curve name -> [(x, y)] in point order, for the ALL slice
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    #: metric -> [(run_date, value)] for the ALL slice, oldest first
    trend: dict[str, list[tuple[dt.date, float]]] = field(default_factory=dict)

    def get(self, metric: str, slice_: str = ALL_ROWS, threshold: float | None = None) -> Metric:
        return self.metrics.get((slice_, metric, threshold), Metric(None, "not in the table"))

    def slices(self) -> list[str]:
        return sorted({s for s, _, _ in self.metrics if s != ALL_ROWS})

    def thresholds(self) -> list[float]:
        return sorted({t for _, _, t in self.metrics if t is not None})


def _table(spark: SparkSession, name: str) -> DataFrame | None:
    try:
        return spark.table(name)
    except AnalysisException:
        return None


def _nightly(df: DataFrame, model: str) -> DataFrame:
    """Rows of ``model`` from nightly runs (``window_days = 1``, when the table has it)."""
    df = df.filter(F.col("model") == F.lit(model))
    if "window_days" in df.columns:
        df = df.filter(F.col("window_days") == F.lit(1))
    return df


def load_report_data(
    spark: SparkSession,
    results_table: str,
    curves_table: str,
    model: str,
    run_date: dt.date,
    days: int = 30,
    score_column: str | None = None,
) -> tuple[list[ScoreData], list[str]]:
    """Read the rows the report needs: (one :class:`ScoreData` per score column, notes).

    Raises :class:`~tally.errors.InputError` when the results table is missing or
    holds no nightly row of ``model`` on ``run_date`` (or of ``score_column``).
    """
    if days < 1:
        raise InputError(f"days must be at least 1, got {days}")
    notes: list[str] = []
    results = _table(spark, results_table)
    if results is None:
        raise InputError(f"results table {results_table} does not exist")
    first = run_date - dt.timedelta(days=days - 1)
    rows_df = _nightly(results, model).filter(
        (F.col("run_date") >= F.lit(first)) & (F.col("run_date") <= F.lit(run_date))
    )
    if "class" in rows_df.columns:
        rows_df = rows_df.filter(F.col("class").isNull())
    if score_column is not None:
        rows_df = rows_df.filter(F.col("score_column") == F.lit(score_column))
    today = F.col("run_date") == F.lit(run_date)
    trend = (F.col("slice") == F.lit(ALL_ROWS)) & F.col("metric").isin(*TREND_METRICS)
    rows = (
        rows_df.filter(today | trend)
        .select("score_column", "slice", "metric", "threshold", "value", "reason", "run_date")
        .collect()
    )
    scores: dict[str, ScoreData] = {}
    trend_points: dict[tuple[str, str], dict[dt.date, float]] = defaultdict(dict)
    for r in rows:
        if r["run_date"] == run_date:
            data = scores.setdefault(r["score_column"], ScoreData(r["score_column"]))
            key = (r["slice"], r["metric"], r["threshold"])
            data.metrics[key] = Metric(r["value"], r["reason"])
        if (
            r["slice"] == ALL_ROWS
            and r["metric"] in TREND_METRICS
            and r["threshold"] is None
            and r["value"] is not None
            and math.isfinite(r["value"])
        ):
            trend_points[(r["score_column"], r["metric"])][r["run_date"]] = r["value"]
    if not scores:
        what = f"model {model!r}" + (f" score column {score_column!r}" if score_column else "")
        raise InputError(f"no results in {results_table} for {what} on run_date {run_date}")
    for (name, metric), by_date in trend_points.items():
        if name in scores:
            scores[name].trend[metric] = sorted(by_date.items())

    curves = _table(spark, curves_table)
    if curves is None:
        notes.append(f"The curves table {curves_table} does not exist: no curves are drawn.")
    else:
        curve_df = _nightly(curves, model).filter(
            (F.col("run_date") == F.lit(run_date)) & (F.col("slice") == F.lit(ALL_ROWS))
        )
        if score_column is not None:
            curve_df = curve_df.filter(F.col("score_column") == F.lit(score_column))
        raw: dict[tuple[str, str], list[tuple[int, float, float]]] = defaultdict(list)
        for r in curve_df.select("score_column", "curve", "point", "x", "y").collect():
            if r["score_column"] in scores and r["x"] is not None and r["y"] is not None:
                raw[(r["score_column"], r["curve"])].append((r["point"], r["x"], r["y"]))
        for (name, curve), points in raw.items():
            scores[name].curves[curve] = [(x, y) for _, x, y in sorted(points)]
    return [scores[name] for name in sorted(scores)], notes


def load_checks(
    spark: SparkSession,
    checks_table: str,
    model: str,
    run_date: dt.date,
    score_column: str | None = None,
) -> list[Outcome]:
    """The run's rows of the checks table, failed first; none when the table is missing."""
    table = _table(spark, checks_table)
    if table is None:
        return []
    rows = table.filter((F.col("model") == F.lit(model)) & (F.col("run_date") == F.lit(run_date)))
    if score_column is not None:
        rows = rows.filter(F.col("score_column") == F.lit(score_column))
    fields = ("score_column", "slice", "check", "metric", "value", "baseline", "limit", "passed",
              "message")
    outcomes = [Outcome(**{f: r[f] for f in fields}) for r in rows.select(*fields).collect()]
    return sorted(outcomes, key=lambda o: (o.passed, o.score_column, o.slice, o.check))


# --------------------------------------------------------------------------- formatting


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def format_value(value: float | None, metric: str = "") -> str:
    """How a number is shown: counts with thousands separators, others with 4 decimals."""
    if value is None:
        return "—"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if metric in COUNT_METRICS and value == int(value):
        return f"{int(value):,}"
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.2e}"
    if abs(value) >= 1e5:
        return f"{value:,.0f}"
    return f"{value:.4f}"


def _cell(metric_name: str, m: Metric) -> str:
    """A numeric <td>; the exact value in data-value, the reason of a null as tooltip."""
    if m.value is None:
        reason = m.reason or "null"
        return f'<td class="num null" title="{_esc(reason)}">—</td>'
    return (
        f'<td class="num" data-metric="{_esc(metric_name)}" data-value="{m.value!r}" '
        f'title="{m.value!r}">{_esc(format_value(m.value, metric_name))}</td>'
    )


def _note(text: str) -> str:
    return f'<p class="note">{_esc(text)}</p>'


# --------------------------------------------------------------------------- SVG plots


@dataclass(frozen=True)
class Series:
    """One thing drawn in a plot: a line, markers, or both."""

    points: Sequence[tuple[float, float]]
    label: str
    color: str = BLUE
    line: bool = True
    markers: bool = False
    dashed: bool = False


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """About ``target`` round tick values (steps of 1, 2, 2.5 or 5 × 10^k) within [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / target
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if raw <= m * magnitude * (1 + 1e-9))
    first = math.ceil(lo / step - 1e-9)
    ticks = []
    k = first
    while k * step <= hi + step * 1e-9:
        ticks.append(round(k * step, 12))
        k += 1
    return ticks


def _tick_label(value: float, ticks: Sequence[float]) -> str:
    span = max(abs(t) for t in ticks) if ticks else abs(value)
    if span >= 1e6:
        return f"{value / 1e6:g}M"
    if span >= 1e4:
        return f"{value / 1e3:g}k"
    step = min((b - a for a, b in itertools.pairwise(ticks)), default=1.0)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
    if decimals and round(step * 10**decimals, 6) % 1:
        decimals += 1  # a step of 0.25 needs two decimals
    return f"{value:.{decimals}f}"


def _padded(values: Iterable[float]) -> tuple[float, float]:
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return 0.0, 1.0
    lo, hi = min(values), max(values)
    pad = (abs(lo) * 0.05 or 1.0) if hi == lo else (hi - lo) * 0.1
    return lo - pad, hi + pad


@dataclass(frozen=True)
class _Frame:
    """Where a plot's data area lies in the SVG, and the data ranges it shows."""

    left: float
    top: float
    width: float
    height: float
    x_range: tuple[float, float]
    y_range: tuple[float, float]

    @property
    def bottom(self) -> float:
        return self.top + self.height

    def x(self, value: float) -> float:
        lo, hi = self.x_range
        return self.left + (value - lo) / (hi - lo) * self.width

    def y(self, value: float) -> float:
        lo, hi = self.y_range
        return self.bottom - (value - lo) / (hi - lo) * self.height


def svg_plot(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    x_ticks: Sequence[tuple[float, str]] | None = None,
    width: int = 346,
    height: int = 300,
    legend: Sequence[tuple[str | None, str, bool]] = (),
    square: bool = False,
) -> str:
    """An inline ``<svg>`` line/scatter plot with axes, ticks, a grid, labels and a legend.

    ``legend`` entries are (colour or None for no swatch, text, dashed), drawn
    under the x-axis label;
    ``x_ticks`` overrides the x tick positions and labels (e.g. dates); ``square``
    makes the plot area square (its height then follows from ``width``).
    """
    all_points = [p for s in series for p in s.points]
    left, right, top = 62, 14, 30
    bottom = 46 + (18 * len(legend) + 6 if legend else 0)
    plot_w = width - left - right
    plot_h = plot_w if square else height - top - bottom
    height = top + plot_h + bottom
    frame = _Frame(
        left=left,
        top=top,
        width=plot_w,
        height=plot_h,
        x_range=x_range or _padded(x for x, _ in all_points),
        y_range=y_range or _padded(y for _, y in all_points),
    )
    if x_ticks is None:
        ticks = nice_ticks(*frame.x_range)
        x_ticks = [(t, _tick_label(t, ticks)) for t in ticks]
    return "".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{_esc(title)}"><title>{_esc(title)}</title>',
            f'<text x="{left + plot_w / 2:.1f}" y="18" class="ptitle" text-anchor="middle">'
            f"{_esc(title)}</text>",
            f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" class="frame"/>',
            *_grid_and_ticks(frame, x_ticks),
            *_axis_labels(frame, x_label, y_label),
            *_clipped_series(frame, series),
            *_legend(frame, legend),
            "</svg>",
        ]
    )


def _grid_and_ticks(frame: _Frame, x_ticks: Sequence[tuple[float, str]]) -> list[str]:
    """Horizontal grid lines with y tick labels, then vertical ones with ``x_ticks``."""
    out = []
    y_ticks = nice_ticks(*frame.y_range)
    right = frame.left + frame.width
    for t in y_ticks:
        y = frame.y(t)
        out.append(f'<line x1="{frame.left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" class="grid"/>')
        out.append(
            f'<text x="{frame.left - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">'
            f"{_esc(_tick_label(t, y_ticks))}</text>"
        )
    for t, text in x_ticks:
        x = frame.x(t)
        out.append(
            f'<line x1="{x:.1f}" y1="{frame.top}" x2="{x:.1f}" y2="{frame.bottom}" class="grid"/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{frame.bottom + 16}" class="tick" text-anchor="middle">'
            f"{_esc(text)}</text>"
        )
    return out


def _axis_labels(frame: _Frame, x_label: str, y_label: str) -> list[str]:
    """The x label under the tick labels and the y label turned along the left edge."""
    return [
        f'<text x="{frame.left + frame.width / 2:.1f}" y="{frame.bottom + 34}" class="axis" '
        f'text-anchor="middle">{_esc(x_label)}</text>',
        f'<text transform="translate(14 {frame.top + frame.height / 2:.1f}) rotate(-90)" '
        f'class="axis" text-anchor="middle">{_esc(y_label)}</text>',
    ]


def _clipped_series(frame: _Frame, series: Sequence[Series]) -> list[str]:
    """Each series as a polyline and/or markers, clipped to the data area.

    Points with a non-finite coordinate are left out; a series of one point is a marker.
    """
    clip = f"clip{next(_clip_ids)}"
    out = [
        f'<clipPath id="{clip}"><rect x="{frame.left}" y="{frame.top}" width="{frame.width}" '
        f'height="{frame.height}"/></clipPath><g clip-path="url(#{clip})">'
    ]
    for s in series:
        pts = [
            (frame.x(x), frame.y(y)) for x, y in s.points if math.isfinite(x) and math.isfinite(y)
        ]
        if s.line and len(pts) > 1:
            dash = ' stroke-dasharray="5 4"' if s.dashed else ""
            coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            out.append(
                f'<polyline points="{coords}" fill="none" stroke="{s.color}" '
                f'stroke-width="{1.5 if s.dashed else 2}"{dash}/>'
            )
        if s.markers or len(pts) == 1:
            out.extend(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{s.color}"/>' for x, y in pts
            )
    out.append("</g>")
    return out


def _legend(frame: _Frame, legend: Sequence[tuple[str | None, str, bool]]) -> list[str]:
    """One line per entry under the x label: a swatch (none when the colour is None), text."""
    out = []
    x0 = frame.left
    for i, (color, text, dashed) in enumerate(legend):
        ly = frame.bottom + 46 + 18 * i + 8
        dash = ' stroke-dasharray="5 4"' if dashed else ""
        if color is not None:  # None: a line of text under the entry above
            out.append(
                f'<line x1="{x0}" y1="{ly - 4}" x2="{x0 + 22}" y2="{ly - 4}" stroke="{color}" '
                f'stroke-width="2.5"{dash}/>'
            )
        out.append(f'<text x="{x0 + 28}" y="{ly}" class="legend">{_esc(text)}</text>')
    return out


# --------------------------------------------------------------------------- sections


def _headline_table(data: ScoreData) -> str:
    rows = []
    for label, metric in HEADLINE_METRICS:
        m = data.get(metric)
        if (ALL_ROWS, metric, None) not in data.metrics:
            continue
        reason = f' <span class="reason">({_esc(m.reason)})</span>' if m.value is None else ""
        rows.append(
            f"<tr><th>{_esc(label)} <code>{_esc(metric)}</code>{reason}</th>{_cell(metric, m)}</tr>"
        )
    if not rows:
        return _note("No headline metrics for this score column (not a binary task?).")
    return f'<table class="headline"><tbody>{"".join(rows)}</tbody></table>'


def _legend_value(m: Metric, metric: str) -> str:
    return format_value(m.value, metric) if m.value is not None else f"null ({m.reason})"


def _roc_section(data: ScoreData) -> str:
    auc, bound = data.get("roc_auc"), data.get("roc_auc_error_bound")
    low, high = data.get("roc_auc_ci_low"), data.get("roc_auc_ci_high")
    points = data.curves.get("roc", [])
    notes = []
    if auc.value is None:
        notes.append(f"roc_auc is null: {auc.reason}.")
    if not points:
        notes.append("No ROC curve is stored for this run (undefined without both classes).")
        return "".join(_note(n) for n in notes)
    legend: list[tuple[str | None, str, bool]] = [
        (BLUE, f"ROC AUC {_legend_value(auc, 'roc_auc')}", False)
    ]
    if bound.value is not None:
        legend[0] = (BLUE, f"{legend[0][1]} ± {format_value(bound.value)}", False)
    if low.value is not None and high.value is not None:
        legend.append(
            (None, f"DeLong CI [{format_value(low.value)}, {format_value(high.value)}]", False)
        )
    legend.append((GREY, "chance", True))
    plot = svg_plot(
        [
            Series([(0.0, 0.0), (1.0, 1.0)], "chance", GREY, dashed=True),
            Series(points, "ROC", BLUE),
        ],
        title="ROC curve",
        x_label="false positive rate",
        y_label="true positive rate",
        x_range=(0.0, 1.0),
        y_range=(0.0, 1.0),
        legend=legend,
        square=True,
    )
    return plot + "".join(_note(n) for n in notes)


def _pr_section(data: ScoreData) -> str:
    ap = data.get("pr_auc")
    points = data.curves.get("pr", [])
    notes = [f"pr_auc is null: {ap.reason}."] if ap.value is None else []
    if not points:
        notes.append(
            "No precision-recall curve is stored for this run (undefined without positives)."
        )
        return "".join(_note(n) for n in notes)
    series = [Series(points, "PR", ORANGE)]
    legend = [(ORANGE, f"PR AUC (average precision) {_legend_value(ap, 'pr_auc')}", False)]
    pos, count = data.get("positives").value, data.get("count").value
    if pos is not None and count:
        rate = pos / count
        series.insert(0, Series([(0.0, rate), (1.0, rate)], "base rate", GREY, dashed=True))
        legend.append((GREY, f"positive rate {format_value(rate)} (no skill)", True))
    plot = svg_plot(
        series,
        title="Precision-recall curve",
        x_label="recall",
        y_label="precision",
        x_range=(0.0, 1.0),
        y_range=(0.0, 1.0),
        legend=legend,
        square=True,
    )
    return plot + "".join(_note(n) for n in notes)


def _reliability_section(data: ScoreData) -> str:
    ece, mce = data.get("ece"), data.get("mce")
    points = data.curves.get("reliability", [])
    if not points:
        return _note("No reliability curve is stored for this run (no rows, or no curves).")
    legend = [
        (GREEN, f"model: ECE {_legend_value(ece, 'ece')}, MCE {_legend_value(mce, 'mce')}", False),
        (GREY, "perfectly calibrated", True),
    ]
    return svg_plot(
        [
            Series([(0.0, 0.0), (1.0, 1.0)], "diagonal", GREY, dashed=True),
            Series(points, "reliability", GREEN, markers=True),
        ],
        title="Calibration (reliability)",
        x_label="mean score in bin",
        y_label="positive rate in bin",
        x_range=(0.0, 1.0),
        y_range=(0.0, 1.0),
        legend=legend,
        square=True,
    )


def _threshold_table(data: ScoreData) -> str:
    thresholds = data.thresholds()
    if not thresholds:
        return _note("No thresholded metrics for this run.")
    head = "".join(f'<th class="num">{_esc(m)}</th>' for m in THRESHOLD_METRICS)
    body = []
    for t in thresholds:
        cells = "".join(_cell(m, data.get(m, ALL_ROWS, t)) for m in THRESHOLD_METRICS)
        body.append(f'<tr><td class="num">{_esc(f"{t:g}")}</td>{cells}</tr>')
    return (
        f'<table class="grid-table"><thead><tr><th class="num">threshold</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def slice_order(data: ScoreData) -> list[str]:
    """Slices from the worst ``roc_auc`` up; slices with a null AUC last (then by name)."""

    def key(name: str) -> tuple[bool, float, str]:
        value = data.get("roc_auc", name).value
        missing = value is None or math.isnan(value)
        return (missing, 0.0 if missing else value, name)  # type: ignore[return-value]

    return sorted(data.slices(), key=key)


def _slice_table(data: ScoreData) -> str:
    slices = slice_order(data)
    if not slices:
        return _note("No slices in this run (the config has no `slices`).")
    head = "".join(f'<th class="num">{_esc(m)}</th>' for m in SLICE_METRICS)
    overall = "".join(_cell(m, data.get(m)) for m in SLICE_METRICS)
    body = [f'<tr class="overall"><td>{ALL_ROWS} (all rows)</td>{overall}</tr>']
    for name in slices:
        cells = "".join(_cell(m, data.get(m, name)) for m in SLICE_METRICS)
        body.append(f'<tr data-slice="{_esc(name)}"><td>{_esc(name)}</td>{cells}</tr>')
    return (
        f'<table class="grid-table slices"><thead><tr><th>slice</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _checks_section(outcomes: Sequence[Outcome]) -> str:
    """The checks of the run, failed first: outcome, where, rule, value against limit."""
    failed = sum(not o.passed for o in outcomes)
    head = "<th></th><th>score column</th><th>slice</th><th>check</th>" + "".join(
        f'<th class="num">{h}</th>' for h in ("value", "limit", "baseline")
    )
    body = []
    for o in outcomes:
        status = '<td class="passed">passed</td>' if o.passed else '<td class="failed">FAILED</td>'
        numbers = (_cell(o.metric, Metric(v, "null")) for v in (o.value, o.limit, o.baseline))
        body.append(
            f'<tr data-check-passed="{str(o.passed).lower()}">{status}'
            f"<td>{_esc(o.score_column)}</td><td>{_esc(o.slice)}</td><td>{_esc(o.check)}</td>"
            f'{"".join(numbers)}<td class="reason">{_esc(o.message or "")}</td></tr>'
        )
    return (
        f'<section class="checks"><h2>Checks: {len(outcomes) - failed} passed, {failed} failed'
        f'</h2><table class="grid-table"><thead><tr>{head}<th>message</th></tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></section>"
    )


def _date_ticks(first: dt.date, last: dt.date) -> list[tuple[float, str]]:
    span = (last - first).days
    step = max(1, math.ceil(span / 4))
    ticks = [first + dt.timedelta(days=d) for d in range(0, span + 1, step)]
    return [(float(d.toordinal()), d.strftime("%m-%d")) for d in ticks]


def _trend_section(data: ScoreData, run_date: dt.date, days: int) -> str:
    first = run_date - dt.timedelta(days=days - 1)
    plots = []
    for metric, color in zip(TREND_METRICS, (BLUE, ORANGE, VERMILION, GREEN), strict=True):
        points = data.trend.get(metric, [])
        if not points:
            plots.append(
                f'<div class="trend-missing">{_note(f"{metric}: no values in these days.")}</div>'
            )
            continue
        xy = [(float(d.toordinal()), v) for d, v in points]
        lo, hi = float(first.toordinal()), float(run_date.toordinal())
        pad = max((hi - lo) * 0.03, 0.5)
        plots.append(
            svg_plot(
                [Series(xy, metric, color, markers=len(xy) <= 40)],
                title=f"{metric} (last: {format_value(points[-1][1], metric)})",
                x_label="run date",
                y_label=metric,
                x_range=(lo - pad, hi + pad),
                x_ticks=_date_ticks(first, run_date),
                width=270,
                height=200,
            )
        )
    runs = len({d for series in data.trend.values() for d, _ in series})
    caption = (
        f"Nightly runs (window_days = 1) from {first} to {run_date}: "
        f"{runs} run date{'s' if runs != 1 else ''} with values."
    )
    return f'<p class="caption">{_esc(caption)}</p><div class="trend">{"".join(plots)}</div>'


def _score_section(data: ScoreData, run_date: dt.date, days: int) -> str:
    sid = _esc(data.name)
    return (
        f'<section class="score" data-score-column="{sid}">'
        f"<h2>Score column <code>{sid}</code></h2>"
        f'<div class="row"><div><h3>Headline</h3>{_headline_table(data)}</div>'
        f"<div><h3>Slices, worst ROC AUC first</h3>{_slice_table(data)}</div></div>"
        f"<h3>At each threshold</h3>{_threshold_table(data)}"
        '<h3>Curves</h3><div class="row plots">'
        f"<div>{_roc_section(data)}</div><div>{_pr_section(data)}</div>"
        f"<div>{_reliability_section(data)}</div></div>"
        f"<h3>Trend over the last {days} days</h3>{_trend_section(data, run_date, days)}"
        "</section>"
    )


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
 color:#1d232b;margin:0;background:#f5f6f8}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px;background:#fff;min-height:100vh}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:34px 0 8px;padding-top:14px;
 border-top:2px solid #e3e6ea}h3{font-size:15px;margin:22px 0 8px;color:#3b4450}
.meta{color:#5b6470;margin:0 0 8px}.note{background:#fff7e0;border-left:4px solid #E69F00;
 padding:6px 10px;margin:6px 0;color:#4a3b00}.caption{color:#5b6470;margin:4px 0}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f0f2f5;
 padding:0 3px;border-radius:3px}
.row{display:flex;flex-wrap:wrap;gap:14px 36px;align-items:flex-start}
.plots{gap:14px}.plots>div{flex:0 0 auto;width:346px}
.trend{display:flex;flex-wrap:wrap;gap:6px}.trend-missing{width:270px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:3px 10px;border-bottom:1px solid #e6e8eb;text-align:left;vertical-align:top}
thead th{background:#f0f2f5;border-bottom:2px solid #d5d9de;white-space:nowrap}
td.num,th.num{text-align:right;white-space:nowrap}td.null{color:#9aa1a9}
.headline th{font-weight:normal;color:#3b4450}.reason{color:#9aa1a9;font-size:12px}
.grid-table tbody tr:nth-child(even){background:#fafbfc}tr.overall{font-weight:600;
 background:#eef4fa!important}
svg.plot{background:#fff;font-family:inherit}svg .frame{fill:none;stroke:#9aa1a9}
svg .grid{stroke:#eceef1}svg .tick{font-size:11px;fill:#5b6470}
svg .axis{font-size:12px;fill:#3b4450}svg .ptitle{font-size:13.5px;font-weight:600;
 fill:#1d232b}svg .legend{font-size:12px;fill:#1d232b}
td.passed{color:#009E73}td.failed{color:#D55E00;font-weight:600}
"""


def build_report(
    spark: SparkSession,
    results_table: str,
    curves_table: str,
    model: str,
    run_date: dt.date,
    days: int = 30,
    score_column: str | None = None,
    checks_table: str | None = None,
) -> str:
    """The HTML report of ``model`` on ``run_date`` (all score columns, or ``score_column``).

    Reads the nightly rows (``window_days = 1``) of the two tables; the trend
    covers the ``days`` days ending on ``run_date``. Missing curves or null
    metrics show a note; no rows at all raise :class:`~tally.errors.InputError`.
    The run's checks (from ``checks_table``, when given and holding rows) come first.
    """
    scores, notes = load_report_data(
        spark, results_table, curves_table, model, run_date, days, score_column
    )
    checks = load_checks(spark, checks_table, model, run_date, score_column) if checks_table else []
    title = f"Tally report — {model} — {run_date}"
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    names = ", ".join(s.name for s in scores)
    meta = (
        f"Results from <code>{_esc(results_table)}</code>, curves from "
        f"<code>{_esc(curves_table)}</code>; score column{'s' if len(scores) > 1 else ''} "
        f"{_esc(names)}; generated {_esc(generated)}. Hover a number for its exact value "
        "(or, when null, the reason)."
    )
    body = (_checks_section(checks) if checks else "") + "".join(
        _score_section(s, run_date, days) for s in scores
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head>"
        f"<body><main><h1>{_esc(title)}</h1>"
        f'<p class="meta">{meta}</p>{"".join(_note(n) for n in notes)}{body}'
        "</main></body></html>\n"
    )


def default_report_path(model: str, run_date: dt.date, folder: str | Path = "reports") -> Path:
    """``reports/<model>-<run_date>.html``; characters unsafe in a file name become ``_``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", model).lstrip(".") or "_"
    return Path(folder) / f"{safe}-{run_date.isoformat()}.html"


def write_report(path: str | Path, html_text: str) -> Path:
    """Write the report (UTF-8), creating the parent folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_text, encoding="utf-8")
    return path


__all__ = [
    "Metric",
    "ScoreData",
    "Series",
    "build_report",
    "default_report_path",
    "format_value",
    "load_checks",
    "load_report_data",
    "nice_ticks",
    "slice_order",
    "svg_plot",
    "write_report",
]
