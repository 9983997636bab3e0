# recobatch developer commands. `make test` and `make run` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 7071

FLOOR_VENV := .venv-floor

.PHONY: help setup test test-floor lint run demo bench clean

help:
	@echo "make test   - set up .venv and Azurite, run ruff and every test (what CI runs)"
	@echo "make test-floor - replay and indexing tests on the lowest versions requirements.txt allows"
	@echo "make run    - start Azurite + recoservice (--demo) + devhost locally"
	@echo "make demo   - like run, then submit the samples, wait, print the results, stop"
	@echo "make bench  - run the benchmarks under bench/ (prints figures)"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Re-install only when a requirements file changed.
$(VENV)/.installed: requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed node_modules/.installed

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The lowest allowed versions: every `name>=X` of requirements.txt pinned to `name==X`.
$(FLOOR_VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(FLOOR_VENV)
	sed -nE 's/^([A-Za-z0-9_.-]+)(\[[^]]*\])?>=([^,; #]+).*/\1==\3/p' requirements.txt \
		> $(FLOOR_VENV)/constraints.txt
	$(FLOOR_VENV)/bin/python -m pip install --quiet -r requirements.txt \
		-c $(FLOOR_VENV)/constraints.txt pytest pytest-timeout
	touch $@

test-floor: $(FLOOR_VENV)/.installed
	$(FLOOR_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/orchestrators \
		tests/test_indexing.py

test: setup lint test-floor
	$(PY) -m pytest

run: setup
	$(PY) -m devhost.run --port $(PORT)

demo: setup
	$(PY) -m devhost.run --port $(PORT) --demo

bench: setup
	$(PY) bench/recoservice_scoring.py
	$(PY) bench/prepare_merge.py
	$(PY) bench/orchestration_history.py

clean:
	rm -rf .run .devhost .pytest_cache .ruff_cache $(FLOOR_VENV)
