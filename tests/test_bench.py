"""Smoke test of the benchmark harness (``make bench``) on 20,000 rows: structure, not timing.

Runs every method once on the session's Spark, writes the report to a temporary
folder (never ``docs/``), and checks that the methods agree on the ROC AUC.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tally.bench import data as datasets
from tally.bench import report
from tally.bench.methods import METHOD_KEYS
from tally.bench.run import Options, run_throughput

ROWS = 20_000


@pytest.fixture(scope="module")
def bench(spark, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("bench-out")
    options = Options(
        rows=ROWS,
        data=tmp_path_factory.mktemp("bench-data"),
        out=out,
        repeats=1,
        command="test_bench",
    )
    return run_throughput(options, spark=spark, say=lambda _: None), out


def test_datasets_are_deterministic_and_cached(tmp_path: Path) -> None:
    first = datasets.ensure(tmp_path / "a", "binary", 3_000, log=lambda _: None)
    second = datasets.ensure(tmp_path / "b", "binary", 3_000, log=lambda _: None)
    assert [f.read_bytes() for f in first.files] == [f.read_bytes() for f in second.files]
    assert datasets.cached(tmp_path / "a", "binary", 3_000) == first
    assert datasets.cached(tmp_path / "a", "binary", 4_000) is None
    table = datasets.binary_chunk(50_000, 0).to_pandas()
    assert 0.015 < table["ctr_score"].mean() < 0.025
    assert table["ctr_score"].median() < 0.015
    assert table["country"].nunique() == len(datasets.COUNTRIES) == 50
    multi = datasets.multilabel_chunk(100, 0).to_pylist()
    assert all(len(r["labels"]) == len(r["scores"]) == datasets.CLASSES for r in multi)


def test_table_structure(bench: tuple[dict, Path]) -> None:
    payload, out = bench
    methods = {m["key"]: m for m in payload["methods"]}
    assert tuple(methods) == METHOD_KEYS
    for key, m in methods.items():
        if key == "tally_multilabel" and m["status"] == "not available":
            continue  # Spark multi-label counting not there yet
        assert m["status"] == "ok", (key, m["note"])
        assert m["runs"] == 1 and m["wall_s"] > 0 and m["cpu_s"] > 0
        assert m["rows_per_cpu_s"] > 0 and m["vs_floor"] > 0
        assert m["peak_rss_python_mib"] > 0
        assert (m["peak_rss_jvm_mib"] is not None) == (not key.startswith("floor"))
    assert methods["floor"]["vs_floor"] == pytest.approx(1.0)
    assert {"CPU", "Python", "Spark", "Java", "numpy"} <= set(payload["machine"])
    saved = json.loads((out / report.JSON_NAME).read_text())
    assert saved["throughput"]["rows"] == ROWS
    md = (out / report.MD_NAME).read_text()
    assert "| method | rows | wall s |" in md and "Tally binary" in md and "floor" in md


def test_methods_agree_on_roc_auc(bench: tuple[dict, Path]) -> None:
    payload, _ = bench
    methods = {m["key"]: m for m in payload["methods"]}
    auc = {k: m["metrics"].get("roc_auc[score]") for k, m in methods.items()}
    exact = auc["sklearn"]
    bound = methods["tally"]["metrics"]["roc_auc_error_bound[score]"]
    # the floor and Tally count the same buckets: the same bucketed AUC
    for key in ("tally", "tally_slices", "tally_two_scores"):
        assert auc[key] == pytest.approx(auc["floor"], abs=1e-12)
    assert abs(auc["tally"] - exact) <= bound + 1e-12
    assert auc["spark_ml"] == pytest.approx(exact, abs=1e-3)  # numBins=1000 downsamples
    for row in payload["auc"]:
        assert abs(row["roc_auc"] - row["exact"]) <= row["bound"] + 1e-12
    ml = methods["tally_multilabel"]
    if ml["status"] == "ok":
        floor = methods["floor_multilabel"]["metrics"]["macro_roc_auc"]
        assert ml["metrics"]["macro_roc_auc"] == pytest.approx(floor, abs=1e-12)


def test_multilabel_row_says_not_available_without_a_multilabel_dataset(tmp_path: Path) -> None:
    from tally.bench import methods
    from tally.bench.probe import Probe
    from tally.bench.run import measure

    binary = datasets.Dataset("binary", 1, tmp_path)
    ctx = methods.Context(binary=binary, multilabel=None)
    method = next(m for m in methods.METHODS if m.key == "tally_multilabel")
    result = measure(method, ctx, Probe(), repeats=3)
    assert result.status == "not available" and "no multi-label dataset" in result.note
    assert result.samples == []


def test_exact_triples_run_in_rounds_and_give_paired_ratios(tmp_path: Path) -> None:
    """The bucketed, exact and bound methods of a score type run once each per round
    (so a ratio compares runs minutes apart at most), the other methods alone; a
    method that fails stops, the others go on; the paired ratios divide each round's
    runs."""
    from tally.bench import methods
    from tally.bench.probe import Probe
    from tally.bench.run import measure_rounds, paired_ratios, run_groups

    order: list[str] = []

    def fake(key: str, fail_at: int | None = None) -> methods.Method:
        def run(ctx: methods.Context) -> dict[str, float]:
            order.append(key)
            if fail_at is not None and order.count(key) == fail_at:
                raise RuntimeError("broken")
            return {}

        return methods.Method(key, key, "binary", "floor", True, run, "")

    group = [fake("tally_ctr"), fake("tally_ctr_exact"), fake("tally_ctr_exact_floor", 2)]
    alone, wide = fake("tally"), fake("tally_ctr64")
    assert run_groups([alone, *group, wide]) == [[alone], group, [wide]]
    ctx = methods.Context(binary=datasets.Dataset("binary", 1, tmp_path), multilabel=None)
    results = measure_rounds(group, ctx, Probe(), repeats=3)
    assert order == [
        "tally_ctr", "tally_ctr_exact", "tally_ctr_exact_floor",
        "tally_ctr", "tally_ctr_exact", "tally_ctr_exact_floor",
        "tally_ctr", "tally_ctr_exact",
    ]  # fmt: skip
    assert [len(results[m.key].samples) for m in group] == [3, 3, 1]
    assert results["tally_ctr_exact_floor"].status == "failed"
    exact, bucketed = results["tally_ctr_exact"], results["tally_ctr"]
    expected = [e.wall_s / b.wall_s for e, b in zip(exact.samples, bucketed.samples, strict=True)]
    assert paired_ratios(exact, bucketed) == pytest.approx(expected)
    assert paired_ratios(results["tally_ctr_exact_floor"], bucketed) == []


def test_methods_that_hold_every_row_are_skipped_above_the_limit(
    spark, tmp_path_factory: pytest.TempPathFactory
) -> None:
    options = Options(
        rows=ROWS,
        data=tmp_path_factory.mktemp("bench-data-limit"),
        out=None,
        repeats=1,
        slow_limit=ROWS - 1,
        methods=("floor", "tally", "spark_ml", "sklearn"),
    )
    payload = run_throughput(options, spark=spark, say=lambda _: None)
    status = {m["key"]: m["status"] for m in payload["methods"]}
    assert status == {"floor": "ok", "tally": "ok", "spark_ml": "skipped", "sklearn": "skipped"}
    assert payload["auc"] and all(row["exact"] is None for row in payload["auc"])
    assert "skipped: above 19,999 rows" in report.render({"throughput": payload})


def test_exact_mode_on_float32_and_float64_scores_equals_scikit_learn(
    bench: tuple[dict, Path],
) -> None:
    """``ctr_score`` as float32 and as its float64 copy: the same values, so the same
    bucketed and exact metrics, exact in 1 read (the count pass ships the rows), equal to
    scikit-learn's AUC."""
    payload, _ = bench
    metrics = {m["key"]: m["metrics"] for m in payload["methods"]}
    (row,) = [r for r in payload["auc"] if r["column"] == "ctr_score" and not r["buckets"]]
    for key in ("tally_ctr_exact", "tally_ctr64_exact"):
        assert metrics[key]["passes"] == 1
        assert metrics[key]["roc_auc_error_bound[ctr_score]"] == 0.0
        assert metrics[key]["roc_auc[ctr_score]"] == pytest.approx(row["exact"], abs=1e-12)
    for name in ("roc_auc", "roc_auc_error_bound", "pr_auc"):
        column = f"{name}[ctr_score]"
        assert metrics["tally_ctr64"][column] == metrics["tally_ctr"][column]
        assert metrics["tally_ctr64_exact"][column] == pytest.approx(
            metrics["tally_ctr_exact"][column], abs=1e-12
        )


def test_headline_gives_exact_mode_over_bucketed_and_its_bound(bench: tuple[dict, Path]) -> None:
    """The report's headline gives, per score type, exact mode's median wall time over
    the bucketed one and over its lower bound, as the table's medians divide."""
    payload, _ = bench
    wall = {m["key"]: m["wall_s"] for m in payload["methods"]}
    for bucketed, exact, bound, scores in (
        ("tally_ctr", "tally_ctr_exact", "tally_ctr_exact_floor", "float32"),
        ("tally_ctr64", "tally_ctr64_exact", "tally_ctr64_exact_floor", "float64"),
    ):
        (line,) = [h for h in payload["headline"] if f"as {scores}:" in h]
        assert f"{wall[exact] / wall[bucketed]:.2f}× the bucketed wall time in 1 read(s)" in line
        assert f"its lower bound {wall[bound] / wall[bucketed]:.2f}× bucketed" in line
        assert f"exact {wall[exact] / wall[bound]:.2f}× the bound" in line


def _valid_rows(dataset: datasets.Dataset) -> int:
    """Per-row numpy: the rows with a label of 0 or 1 and a ``ctr_score`` in ``[0, 1]``."""
    import pyarrow.parquet as pq

    table = pq.read_table(dataset.path, columns=["label", "ctr_score"])
    s = table["ctr_score"].to_numpy(zero_copy_only=False).astype(np.float64)
    y = table["label"].to_numpy(zero_copy_only=False).astype(np.float64)
    return int(np.count_nonzero(((y == 0) | (y == 1)) & (s >= 0) & (s <= 1)))


def test_exact_floor_ships_every_valid_row(bench: tuple[dict, Path]) -> None:
    """The lower bounds of exact mode (float32 and its float64 copy): the count pass
    ships every valid row, counted here per row."""
    payload, _ = bench
    metrics = {m["key"]: m["metrics"] for m in payload["methods"]}
    binary = datasets.Dataset("binary", ROWS, Path(payload["data"]["binary"]))
    expected = _valid_rows(binary)
    assert 0 < expected <= ROWS
    for key in ("tally_ctr_exact_floor", "tally_ctr64_exact_floor"):
        assert metrics[key]["rows"] == ROWS
        assert metrics[key]["rows_shuffled"] == expected
