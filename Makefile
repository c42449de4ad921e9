# The two commands a new machine needs: `make demo` and `make test`.
# Both create .venv (if missing) and install the project with its dev extras.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-airflow airflow-venv lint format bench bench-api install clean chromium postgresql redis fuzz

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The Airflow provider's tests run in their own venv: real Apache Airflow 3.3 from PyPI beside
# contactpipe[airflow] (Airflow pins many packages; the dev venv stays free of them).
AIRFLOW_VERSION ?= 3.3.2
AIRFLOW_VENV    := .venv-airflow
AIRFLOW_STAMP   := $(AIRFLOW_VENV)/.installed-$(AIRFLOW_VERSION)

$(AIRFLOW_STAMP): pyproject.toml
	test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet \
	  'apache-airflow==$(AIRFLOW_VERSION)' -e '.[airflow,redis]' 'pytest>=8.3'
	$(AIRFLOW_VENV)/bin/python -m pip check
	touch $@

airflow-venv: $(AIRFLOW_STAMP)

demo: $(STAMP)
	$(BIN)/contactpipe demo sample_data --region FR --report-dir demo-report --xlsx-errors

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@# mypy cannot see setuptools' editable finder that maps pipeline/ onto `contactpipe`:
	@# it reads the package through a link tree of the same files instead.
	rm -rf .mypy-src && mkdir -p .mypy-src/contactpipe
	for f in pipeline/*; do ln -s "$$PWD/$$f" .mypy-src/contactpipe/; done
	ln -s "$$PWD/schemas" .mypy-src/contactpipe/schemas
	MYPYPATH=.mypy-src $(BIN)/mypy -p contactpipe

# The report tests open report.html in a real headless Chromium (Debian package `chromium`).
# Installed here when missing and we are root; elsewhere those tests skip and say why.  In CI
# (CI=true) a failed install fails the run: CI must check the page in a browser.
CHROMIUM ?= /usr/bin/chromium
chromium:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium (Debian package) for the report.html browser tests"; \
	  ( apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq chromium >/dev/null ) || { \
	    echo "make chromium: apt-get install chromium failed" >&2; \
	    if [ "$${CI:-}" = true ]; then exit 1; fi; }; \
	else \
	  echo "make chromium: $(CHROMIUM) is missing and cannot be installed here (needs root and" \
	    "apt-get): the browser tests of report.html will be skipped" >&2; \
	  if [ "$${CI:-}" = true ]; then exit 1; fi; \
	fi

# The PostgreSQL state store's tests run a real server (initdb + postgres in a temporary
# directory, tests/pgserver.py) from the Debian package `postgresql`'s binaries.  Installed
# here when missing and we are root; elsewhere those tests skip and say why.  In CI (CI=true)
# a failed install fails the run.
PG_BIN ?= $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb))
postgresql:
	@if [ -n "$(PG_BIN)" ] || command -v initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing postgresql (Debian package) for the PostgreSQL state store tests"; \
	  ( apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends postgresql >/dev/null ) || { \
	    echo "make postgresql: apt-get install postgresql failed" >&2; \
	    if [ "$${CI:-}" = true ]; then exit 1; fi; }; \
	else \
	  echo "make postgresql: the PostgreSQL server binaries are missing and cannot be" \
	    "installed here (needs root and apt-get): the PostgreSQL state tests will be skipped" >&2; \
	  if [ "$${CI:-}" = true ]; then exit 1; fi; \
	fi

# The shared rate limit tests run a real Redis server (Debian package `redis-server`), started
# by a pytest fixture on a free port.  Installed here like chromium; without it (and outside
# CI) those tests skip and say why, in CI (CI=true) a failed install fails the run.
REDIS_SERVER ?= /usr/bin/redis-server
redis:
	@if [ -x "$(REDIS_SERVER)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing redis-server (Debian package) for the shared rate limit tests"; \
	  ( apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends redis-server >/dev/null ) || { \
	    echo "make redis: apt-get install redis-server failed" >&2; \
	    if [ "$${CI:-}" = true ]; then exit 1; fi; }; \
	else \
	  echo "make redis: $(REDIS_SERVER) is missing and cannot be installed here (needs root and" \
	    "apt-get): the Redis rate limit store tests will be skipped" >&2; \
	  if [ "$${CI:-}" = true ]; then exit 1; fi; \
	fi

# pytest exits 5 when it collected no test: that is a broken suite, never a pass.
test: lint chromium postgresql redis test-airflow
	$(BIN)/python -m pytest -n 2 -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no test" >&2; exit 1; fi; \
	exit $$rc

# tests/airflow (skipped by the main suite, which has no Airflow): AIRFLOW_HOME in a temporary
# folder, SQLite metadata, `airflow db migrate`, dag.test() on every example DAG.
test-airflow: $(AIRFLOW_STAMP)
	$(AIRFLOW_VENV)/bin/python -m pytest tests/airflow -q -p no:cacheprovider; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-airflow: pytest collected no test" >&2; exit 1; fi; \
	exit $$rc

# make test fuzzes each reader and the phone cleaner for a few dozen examples; this runs
# thousands (FUZZ_EXAMPLES=N to change).  A crash found becomes a case of tests/test_hostile.py.
FUZZ_EXAMPLES ?= 5000
fuzz: $(STAMP)
	CONTACTPIPE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/test_fuzz.py -n 2 -q

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/bench_validate.py

# The API benchmarks run the sandbox in its own process; MsgFlash at 10 req/s takes minutes.
bench-api: $(STAMP)
	$(BIN)/python benchmarks/bench_load.py
	$(BIN)/python benchmarks/bench_export.py

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) .pytest_cache .ruff_cache .hypothesis demo-report .test-artefacts
