# recobatch developer commands. `make test` and `make run` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 7071

FLOOR_VENV := .venv-floor

.PHONY: help setup shellcheck postgresql chromium test test-floor lint run demo bench clean

help:
	@echo "make test   - set up .venv, Azurite, PostgreSQL, Chromium and the infra checkers, run ruff and every test (what CI runs)"
	@echo "make test-floor - replay and indexing tests on the lowest versions requirements.txt allows"
	@echo "make run    - start Azurite + recoservice (--demo) + devhost locally"
	@echo "make demo   - like run, then submit the samples, wait, print the results, stop"
	@echo "make bench  - run the benchmarks under bench/ (prints figures)"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Re-install only when a requirements file changed.
$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# checkov (tests/infra) in its own venv: it pins versions the app's venv must not be held to.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := .venv-checkov
$(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION):
	rm -rf $(CHECKOV_VENV)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet "checkov==$(CHECKOV_VERSION)"
	touch $@

# shellcheck (tests/infra, the azd hook scripts) from Debian's packages when root, as in CI;
# elsewhere its test fails, naming the package to install.
shellcheck:
	@command -v shellcheck >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null; \
	  else echo "shellcheck is not installed (apt-get install shellcheck): its test will fail"; fi; }

# The PostgreSQL server (tests/recoservice run a second time on it, as a shared recoservice
# database) from Debian's packages when root, as in CI; elsewhere that run fails, naming it.
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "the PostgreSQL server is not installed (apt-get install postgresql): the PostgreSQL run of tests/recoservice will fail"; fi; }

# Headless Chromium and its matching driver (tests/ui drive the status page with Selenium) from
# Debian's packages when root; elsewhere setup stops here, naming them: the page is never left
# untested silently.
chromium:
	@{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends chromium chromium-driver >/dev/null; \
	  fi; \
	  [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || { \
	    echo "make setup: /usr/bin/chromium and /usr/bin/chromedriver are needed by tests/ui (the status page in a headless browser); install them as root: apt-get install --no-install-recommends chromium chromium-driver" >&2; \
	    exit 1; }; }

setup: $(VENV)/.installed node_modules/.installed $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION) shellcheck postgresql chromium

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

# Everything on SQLite (recoservice's default), then recoservice's tests again on PostgreSQL.
test: setup lint test-floor
	$(PY) -m pytest
	RECOSERVICE_TEST_DATABASE=postgresql $(PY) -m pytest tests/recoservice

run: setup
	$(PY) -m devhost.run --port $(PORT)

demo: setup
	$(PY) -m devhost.run --port $(PORT) --demo

bench: setup
	$(PY) bench/recoservice_scoring.py
	$(PY) bench/recoservice_http.py
	$(PY) bench/prepare_merge.py
	$(PY) bench/orchestration_history.py
	$(PY) bench/end_to_end.py

clean:
	rm -rf .run .devhost .pytest_cache .ruff_cache $(FLOOR_VENV)
