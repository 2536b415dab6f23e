"""The fixed-cost benchmark's bookkeeping (tally.bench.fixed_cost): what each case runs,
the medians and ratios, the table. No timings: the benchmark itself measures."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tally.bench import fixed_cost as fc


def test_bare_start_has_no_conf_no_tally_and_no_sharing(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARK_CONF_DIR", "/somewhere/conf")
    monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", "--master local[8] pyspark-shell")
    cmd, env = fc._command("bare", tmp_path)
    assert cmd[1:] == ["bare.py"]
    assert "SPARK_CONF_DIR" not in env and "PYSPARK_SUBMIT_ARGS" not in env
    assert "local[2]" in fc.BARE and "enableHiveSupport" not in fc.BARE and "tally" not in fc.BARE


def test_bare_with_sharing_reads_the_archive_its_dump_wrote(tmp_path):
    _, dump = fc._command("bare_cds_dump", tmp_path)
    cmd, use = fc._command("bare_cds", tmp_path)
    archive = tmp_path / "cache" / "bare.jsa"
    assert f"-XX:ArchiveClassesAtExit={archive}" in shlex.split(dump["PYSPARK_SUBMIT_ARGS"])[1]
    assert f"-XX:SharedArchiveFile={archive}" in shlex.split(use["PYSPARK_SUBMIT_ARGS"])[1]
    assert use["SPARK_CONF_DIR"] == str(tmp_path / "empty-conf")  # empty: Java can dump
    assert cmd[1:] == ["bare.py"]


def test_tally_cases_run_in_the_workspace_conf(tmp_path):
    cmd, env = fc._command("evaluate", tmp_path)
    assert Path(cmd[0]).name == "tally" and cmd[1] == "evaluate"
    assert env["SPARK_CONF_DIR"] == str(tmp_path / "conf")
    assert env["TALLY_CACHE_DIR"] == str(tmp_path / "cache")
    assert "TALLY_CDS" not in env
    assert fc._command("evaluate_no_cds", tmp_path)[1]["TALLY_CDS"] == "off"
    cmd, _ = fc._command("sql", tmp_path)
    assert cmd[1:] == ["sql", fc.QUERY]
    with pytest.raises(ValueError, match="unknown case"):
        fc._command("nope", tmp_path)


def test_summary_medians_and_ratios_to_the_bare_start():
    walls = {"bare": [10.0, 30.0, 20.0], "evaluate": [26.0, 24.0, 100.0], "sql": [21.0, 22.0]}
    result = fc.summary(walls)
    assert result["median_s"] == {"bare": 20.0, "evaluate": 26.0, "sql": 21.5}
    assert result["ratio_to_bare"] == pytest.approx({"evaluate": 1.3, "sql": 1.075})


def test_markdown_lists_every_case_with_its_target():
    result = fc.summary({"bare": [10.0], "evaluate": [13.0], "sql": [12.0]})
    result.update(command="python -m tally.bench.fixed_cost", repeats=1, date="d",
                  load_before="1", load_after="2")  # fmt: skip
    text = "\n".join(fc.markdown(result))
    assert "| bare | 10.0 | 1.00 | – |" in text
    assert "| evaluate | 13.0 | 1.30 | ≤ 1.3 |" in text
    assert "| sql | 12.0 | 1.20 | ≤ 1.1 |" in text
