# Tally — `make run` and `make test` work on a fresh clone (Python 3.10+, Java 17+).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
RUN_DATE ?= $(shell date +%F)
DEMO_ROWS ?= 2000000

# Local Spark reads conf/spark-defaults.conf (embedded Derby metastore, warehouse
# in the project) and runs Python workers with the venv's interpreter.
export SPARK_CONF_DIR := $(CURDIR)/conf
export PYSPARK_PYTHON := $(CURDIR)/$(PY)
export PYSPARK_DRIVER_PYTHON := $(CURDIR)/$(PY)

.DEFAULT_GOAL := help
.PHONY: help setup java-check run demo-data test lint clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

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

demo-data: data/demo/_SUCCESS ## generate the deterministic demo dataset (Parquet, data/demo)

run: setup demo-data ## evaluate the demo dataset and print its metrics through SQL
	$(VENV)/bin/tally evaluate --config conf/demo.yaml --run-date $(RUN_DATE)
	$(VENV)/bin/tally sql --format table \
	  "SELECT metric, threshold, value, reason FROM tally.metrics \
	   WHERE model = 'demo' AND run_date = DATE'$(RUN_DATE)' AND slice = 'ALL' \
	   AND (threshold IS NULL OR threshold = 0.5) AND metric NOT LIKE 'invalid_rows_%' \
	   ORDER BY threshold NULLS FIRST, metric"

test: setup ## run the whole test suite (unit, Spark, end to end)
	$(VENV)/bin/ruff check lib jobs tests
	$(PY) -m pytest

lint: $(STAMP) ## ruff check
	$(VENV)/bin/ruff check lib jobs tests

clean: ## remove generated data, warehouse and metastore (keeps .venv)
	rm -rf data spark-warehouse metastore_db derby.log build dist
