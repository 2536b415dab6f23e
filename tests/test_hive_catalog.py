"""The tests about tables in the metastore, against the Hive metastore (Derby) that jobs use.

The suite's own session keeps its tables in Spark's in-memory catalog (``conftest.py``), so
the tests marked ``hive_catalog`` (a rerun replacing one partition, a write failing midway,
concurrent runs, hostile table and model names, the results table's schema, a catalog
table's partition pruning) run here once more in a pytest of their own, whose session has
Hive support on a temporary Derby metastore.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import CATALOG_VARIABLE
from helpers import PROJECT_ROOT

TESTS = PROJECT_ROOT / "tests"


def marked_files() -> list[str]:
    """The test files holding a ``hive_catalog`` mark (collecting only those is quicker)."""
    return sorted(str(path) for path in TESTS.glob("test_*.py")
                  if "pytest.mark.hive_catalog" in path.read_text())


@pytest.mark.e2e  # a pytest and a JVM of its own
def test_table_tests_pass_on_the_hive_metastore(tmp_path):
    files = marked_files()
    assert len(files) >= 4, files
    # a pytest of its own: not an xdist worker, its temporary files under this test's
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         f"--basetemp={tmp_path / 'pytest'}", "-m", "hive_catalog", *files],
        cwd=PROJECT_ROOT, env={**env, CATALOG_VARIABLE: "hive"},
        capture_output=True, text=True, timeout=900,
    )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 10, summary
    assert not re.search(r"failed|error|skipped", summary), summary
