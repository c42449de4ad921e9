# The two commands a new machine needs: `make demo` and `make test`.
# Both create .venv (if missing) and install the project with its dev extras.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint format bench bench-api install clean fuzz

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/contactpipe demo sample_data --region FR --report-dir demo-report --xlsx-errors

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# pytest exits 5 when it collected no test: that is a broken suite, never a pass.
test: lint
	$(BIN)/python -m pytest -n 2 -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no test" >&2; exit 1; fi; \
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
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis demo-report
