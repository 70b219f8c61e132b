PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint clean messages bench

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

PORT ?= 8001
run: $(STAMP)
	$(BIN)/tissu run --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Benchmarks W1–W6 (never part of `make test`): BENCH_SCALE=small for a quick run.
# Writes bench/results/<UTC date>.json and the table of BENCHMARKS.md.
BENCH_SCALE ?= full
bench: $(STAMP)
	$(BIN)/pip install --quiet "city-scrapers-core==0.11.0"
	command -v wrk >/dev/null 2>&1 || (apt-get install -y -qq wrk >/dev/null 2>&1 || true)
	$(BIN)/python -m bench.run --scale $(BENCH_SCALE)

lint: $(STAMP)
	$(BIN)/ruff check tissu connectors crawlers normalize publish schemas tests
	$(BIN)/mypy --ignore-missing-imports tissu connectors crawlers normalize publish schemas

# Resident pages' translations: extract the French messages, merge them into the fr/en/ar
# catalogues, compile the .mo files (committed, so a clean clone works without this step).
LOCALES := publish/web/locales
messages: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -o $(LOCALES)/messages.pot --no-location --sort-output \
		--project Tissu --copyright-holder Tissu .
	$(BIN)/pybabel update -i $(LOCALES)/messages.pot -d $(LOCALES) --no-fuzzy-matching --width 100
	$(BIN)/pybabel compile -d $(LOCALES) --statistics

clean:
	rm -rf data/tissu.db* data/raw data/publish
