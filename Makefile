# The only commands a newcomer needs. Every target sets up what it uses: the
# first run creates .venv and installs the package (editable) with its test and
# dev extras; later runs reinstall only when pyproject.toml has changed since
# the stamp file inside .venv was written. `rm -rf .venv` starts over.

VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
BENCH_ARGS ?=

# pip's exit status decides success; whatever it prints on stderr (for example
# notes about a configured index directory that does not exist) is only shown.
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_NO_INPUT := 1

.DEFAULT_GOAL := help
.PHONY: help demo test bench lint docs clean

help:
	@echo "make demo    run examples/demo.py"
	@echo "make test    run the test suite (extra pytest arguments: PYTEST_ARGS='-k name')"
	@echo "make bench   run the benchmarks (name filter: BENCH_ARGS=insert; runs: BENCH_REPEAT=N, in BENCH_ROUNDS=N turns)"
	@echo "make lint    ruff check, ruff format --check, mypy"
	@echo "make docs    build the documentation into site/ (strict)"
	@echo "make clean   remove caches and build output (keeps .venv)"

$(STAMP): pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -e '.[test,dev]'
	touch $@

demo: $(STAMP)
	$(PYTHON) examples/demo.py

test: $(STAMP)
	$(PYTHON) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PYTHON) -m benchmarks $(BENCH_ARGS)
	@if [ -z "$(BENCH_ARGS)" ]; then $(PYTHON) -m benchmarks.memory; fi
	@if [ -z "$(BENCH_ARGS)" ]; then $(PYTHON) -m benchmarks.sync_overhead; fi

# All three checks run even when one fails, so one pass shows every problem.
lint: $(STAMP)
	@status=0; \
	for check in "ruff check ." "ruff format --check ." "mypy"; do \
		echo "$(PYTHON) -m $$check"; \
		$(PYTHON) -m $$check || status=1; \
	done; \
	exit $$status

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PYTHON) -m mkdocs build --strict

clean:
	rm -rf site build .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
