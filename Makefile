# Tally — `make run` and `make test` work on a fresh clone (Python 3.10+, Java 17+).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
RUN_DATE ?= $(shell date +%F)
DEMO_ROWS ?= 2000000
DEMO_TASK_ROWS ?= 200000
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
# Airflow lives in its own venv (its dependency tree would clash with the pyspark/pandas pins).
# Only PyPI is needed: exact pins instead of Airflow's constraints file (served from GitHub).
AIRFLOW_VENV := .venv-airflow
AIRFLOW_PYTHON ?= $(PYTHON)
AIRFLOW_PINS := apache-airflow==3.3.2 apache-airflow-providers-apache-spark==6.3.4 \
                apache-airflow-providers-standard==1.21.0

# Local Spark reads conf/spark-defaults.conf (embedded Derby metastore, warehouse
# in the project) and runs Python workers with the venv's interpreter.
export SPARK_CONF_DIR := $(CURDIR)/conf
export PYSPARK_PYTHON := $(CURDIR)/$(PY)
export PYSPARK_DRIVER_PYTHON := $(CURDIR)/$(PY)

.DEFAULT_GOAL := help
.PHONY: help setup java-check run demo-data test lint clean package airflow-env

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

setup: $(STAMP) java-check ## create .venv and install Tally with its test tools

java-check: ## check that Java 17+ is there (Spark 4.3 needs it)
	@java_bin=$${JAVA_HOME:+$$JAVA_HOME/bin/}java; \
	if ! command -v $$java_bin >/dev/null 2>&1; then \
	  echo "Java not found. Spark 4.3 needs Java 17 or 21: e.g. 'apt-get install openjdk-17-jre-headless', or set JAVA_HOME." >&2; exit 1; fi; \
	major=$$($$java_bin -version 2>&1 | awk -F'"' '/version/ {split($$2, v, "."); print (v[1] == "1" ? v[2] : v[1]); exit}'); \
	if [ "$${major:-0}" -lt 17 ]; then \
	  echo "Java $$major found at $$(command -v $$java_bin); Spark 4.3 needs 17 or 21: e.g. 'apt-get install openjdk-17-jre-headless', or point JAVA_HOME at a JDK 17." >&2; exit 1; fi

data/demo/_SUCCESS: | $(STAMP)
	$(VENV)/bin/tally demo-data --path data/demo --rows $(DEMO_ROWS)
	@touch $@

data/demo_%/_SUCCESS: | $(STAMP)
	$(VENV)/bin/tally demo-data --kind $* --path data/demo_$* --rows $(DEMO_TASK_ROWS)
	@touch $@

DEMO_DATA := data/demo/_SUCCESS data/demo_multilabel/_SUCCESS data/demo_multiclass/_SUCCESS
demo-data: $(DEMO_DATA) ## generate the deterministic demo datasets (Parquet, data/demo*)

# The headline metrics of the three demo runs (slice ALL, threshold 0.5), through SQL.
DEMO_QUERY := SELECT model, metric, threshold, value, reason FROM tally.metrics \
  WHERE run_date = DATE'$(RUN_DATE)' AND slice = 'ALL' AND class IS NULL \
  AND ((model = 'demo' AND (threshold IS NULL OR threshold = 0.5) \
        AND metric NOT LIKE 'invalid_rows_%') \
    OR (model IN ('demo_multilabel', 'demo_multiclass') AND metric IN ('count', 'invalid_rows', \
        'cp', 'cr', 'cf1', 'op', 'or', 'of1', 'macro_f1', 'micro_f1', 'macro_roc_auc', 'map', \
        'accuracy', 'mpa', 'miou', 'fwiou', 'cohen_kappa', 'top_k_accuracy'))) \
  ORDER BY model, threshold NULLS FIRST, metric

# One `tally batch`: the three jobs and the query share one Spark start.
run: setup demo-data ## evaluate the demo datasets (binary, multi-label, multiclass); print metrics via SQL
	$(VENV)/bin/tally batch \
	  --step binary "evaluate --config conf/demo.yaml --run-date $(RUN_DATE)" \
	  --step multi-label "evaluate --config conf/demo_multilabel.yaml --run-date $(RUN_DATE)" \
	  --step multiclass "evaluate --config conf/demo_multiclass.yaml --run-date $(RUN_DATE)" \
	  --step metrics "sql --format table \"$(DEMO_QUERY)\""

# Two pytest-xdist workers, each with its own Spark session and catalog; --dist loadfile keeps
# a test file on one worker, so a module's fixtures (e.g. the end-to-end runs) run once;
# --no-loadscope-reorder hands the files out in tests/conftest.py's order (longest first).
test: setup airflow-env browser ## run the whole test suite (unit, Spark, end to end)
	$(VENV)/bin/ruff check lib jobs tests
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder

package: ## build dist/tally-<version>.zip (for --py-files) and the wheel
	@mkdir -p dist
	@rm -f dist/tally-*.zip dist/tally-*.whl
	@$(if $(wildcard $(PY)),$(PY),$(PYTHON)) -c 'import pathlib, sys, zipfile; \
	  files = sorted(p for p in pathlib.Path("lib/tally").rglob("*") \
	                 if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"); \
	  z = zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED); \
	  [z.write(p, p.relative_to("lib").as_posix()) for p in files]; z.close()' dist/tally-$(VERSION).zip
	@$(if $(wildcard $(PY)),$(PY),$(PYTHON)) -m pip wheel --quiet --no-deps --wheel-dir dist .
	@ls -1 dist/tally-$(VERSION).zip dist/tally-$(VERSION)-*.whl

airflow-env: ## create .venv-airflow with Airflow and the Spark provider (for the DAG test)
	@if [ "$$(cat $(AIRFLOW_VENV)/.installed-pins 2>/dev/null)" = "$(AIRFLOW_PINS)" ]; then :; \
	elif ! $(AIRFLOW_PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then \
	  echo "airflow-env: not created: the Spark provider needs Python 3.11+," \
	    "$(AIRFLOW_PYTHON) is $$($(AIRFLOW_PYTHON) -V 2>&1) (set AIRFLOW_PYTHON=python3.11)"; \
	else \
	  set -e; rm -rf $(AIRFLOW_VENV); $(AIRFLOW_PYTHON) -m venv $(AIRFLOW_VENV); \
	  echo "installing $(AIRFLOW_PINS) into $(AIRFLOW_VENV)"; \
	  $(AIRFLOW_VENV)/bin/python -m pip install --quiet -c conf/airflow-constraints.txt $(AIRFLOW_PINS); \
	  echo "$(AIRFLOW_PINS)" > $(AIRFLOW_VENV)/.installed-pins; fi

.PHONY: browser
browser: ## install headless Chromium (for the report's browser test), if missing
	@if [ -x /usr/bin/chromium ]; then echo "chromium: $$(/usr/bin/chromium --version 2>/dev/null)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && apt-get install -y -qq chromium; \
	else echo "browser: /usr/bin/chromium is missing; install it as root:" \
	  "apt-get update && apt-get install -y chromium (Debian/Ubuntu)"; fi

# Benchmarks (issue 5), not part of `make test`: data cached under data/bench, results in
# docs/benchmarks.{md,json}. `make bench ROWS=2000000`; BENCH_ARGS='--repeats 1 --note ...'.
ROWS ?= 20000000
MEMORY_ROWS ?= 1000000,100000000
BENCH_ARGS ?=
DAYS ?= 30
.PHONY: bench bench-throughput bench-memory bench-partitions bench-shapes
# `make bench` runs every target of issue 17 beside the throughput table, each in its own
# processes (one at a time: their ratios are measured within each run).
bench: bench-throughput bench-fixed bench-queries bench-shapes bench-multiclass ## all of the below but memory and partitions

bench-throughput: setup ## floor vs Tally vs Spark ML vs scikit-learn on ROWS rows (default 20M) -> docs/benchmarks.md
	$(PY) jobs/bench.py --rows $(ROWS) $(BENCH_ARGS)

bench-memory: setup ## driver peak RSS of Tally binary at MEMORY_ROWS rows (default 1M,100M), fresh JVM each
	$(PY) jobs/bench.py --memory --memory-rows $(MEMORY_ROWS) $(BENCH_ARGS)

bench-partitions: setup ## one day of DAYS (default 30) daily partitions vs the whole table (ROWS in all)
	$(PY) jobs/bench.py --partitions $(DAYS) --rows $(ROWS) $(BENCH_ARGS)

FIXED_ARGS ?=
.PHONY: bench-fixed
bench-fixed: setup ## a job's fixed cost: 1,000-row evaluate and one-row sql vs a bare Spark start (fresh processes)
	$(PY) -m tally.bench.fixed_cost $(FIXED_ARGS)

.PHONY: bench-queries spark-sql
bench-queries: setup ## seconds per `tally sql --file` query after the first (11 queries, one process)
	$(PY) -m tally.bench.queries

# Q is passed to spark-sql -e inside double quotes: write SQL literals with single quotes.
spark-sql: setup ## Spark's spark-sql on the project's catalog: make spark-sql Q="SELECT ..." (no Q: its prompt)
	$(VENV)/bin/tally spark-sql $(if $(Q),-e "$(Q)")

SHAPES_ARGS ?=
bench-shapes: setup ## Tally's marginal CPU vs the floor on binary data of several shapes (ROWS rows each)
	$(PY) -m tally.bench.shapes --rows $(ROWS) $(SHAPES_ARGS)

PIXELS ?= 20000000
MULTICLASS_ARGS ?=
.PHONY: bench-multiclass
bench-multiclass: setup ## multiclass floor vs Tally with each reader, ROWS rows and PIXELS pixels (printed)
	$(PY) -m tally.bench.multiclass --rows $(ROWS) --pixels $(PIXELS) $(MULTICLASS_ARGS)

lint: $(STAMP) ## ruff check
	$(VENV)/bin/ruff check lib jobs tests

clean: ## remove generated data, warehouse, metastore and dist (keeps the venvs)
	rm -rf data spark-warehouse metastore_db derby.log build dist
