# Interlock: `make run` starts the product with its demo landscape, `make test` passes the tests.
# Both set up what they need first; every step is idempotent and skipped when already done.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test lint typecheck unit system-deps bench screenshots clean help

help:
	@echo "make run    start Interlock with the demo landscape (dashboard + control API)"
	@echo "make test   install what is missing, lint, type-check and run the tests"
	@echo "make bench  run the benchmarks in bench/ (prints figures; not a test)"
	@echo "make screenshots  refresh docs/img/ from the real app in headless Chromium"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/uv pip install --python $(BIN)/python --quiet -e '.[landscape,dev]'
	rm -f $(VENV)/.installed-*
	touch $@

# Debian tools the tests use: promtool (prometheus), pdftotext (poppler-utils), chromium.
system-deps:
	@bash .ci/system-deps.sh

run: $(STAMP)
	$(BIN)/interlock up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy adapters tracing collector sla_rules replay dashboards bench

unit: $(STAMP) system-deps
	$(BIN)/python -m pytest -q

test: lint typecheck unit

# Refresh the README's screenshots from the real app (headless Chromium via Playwright).
screenshots: $(STAMP) system-deps
	INTERLOCK_SCREENSHOTS=docs/img $(BIN)/python -m pytest -q tests/browser

bench: $(STAMP)
	@for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
