"""``import tally`` keeps OpenBLAS to one thread (its idle threads spin after each call)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = (
    "import json, tally, numpy, threadpoolctl; "
    "print(json.dumps([i['num_threads'] for i in threadpoolctl.threadpool_info() "
    "if i['internal_api'] == 'openblas']))"
)


def blas_threads(**env: str) -> list[int]:
    clean = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=clean | env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_import_tally_gives_openblas_one_thread():
    assert blas_threads() == [1]


def test_a_thread_count_set_by_the_user_is_kept():
    assert blas_threads(OPENBLAS_NUM_THREADS="2") == [2]
