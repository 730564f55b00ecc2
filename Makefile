# Scenery: `make run` serves the gallery, `make test` runs the tests. Both set everything up.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint bench bench-quick demo clean chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch comes pinned from pyproject.toml; pip must never swap it for another build.
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/scenery init
	$(BIN)/scenery serve --with-worker --host $(HOST) --port $(PORT)

test: $(STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

# The browser tests drive Debian's chromium, installed here when missing (root with apt-get);
# otherwise this stops with one line saying what to run.
chromium:
	@sh .ci/install-chromium

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/search.py
	$(BIN)/python bench/import_speed.py
	$(BIN)/python bench/runtimes.py
	$(BIN)/python bench/api_latency.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/curation.py
	$(BIN)/python bench/watermark.py
	$(BIN)/python bench/review_session.py
	$(BIN)/python bench/task_queue.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/slow_clients.py
	$(BIN)/python bench/hostile_images.py
	$(BIN)/python bench/backup.py

# Every benchmark at tiny sizes (what tests/test_bench.py runs): a smoke run, not figures to quote.
bench-quick: $(STAMP)
	$(BIN)/python bench/search.py --quick
	$(BIN)/python bench/import_speed.py --quick
	$(BIN)/python bench/runtimes.py --quick
	$(BIN)/python bench/api_latency.py --quick
	$(BIN)/python bench/ingest.py --quick
	$(BIN)/python bench/curation.py --quick
	$(BIN)/python bench/watermark.py --quick
	$(BIN)/python bench/review_session.py --quick
	$(BIN)/python bench/task_queue.py --quick
	$(BIN)/python bench/load.py --quick
	$(BIN)/python bench/slow_clients.py --quick
	$(BIN)/python bench/hostile_images.py --quick
	$(BIN)/python bench/backup.py --quick

# Import the sample photos with the offline tiny model (no weights to download).
demo: $(STAMP)
	SCENERY_CLIP_MODEL=tiny-test $(BIN)/scenery import ../shared/data/photos
	SCENERY_CLIP_MODEL=tiny-test $(BIN)/scenery serve --with-worker --host $(HOST) --port $(PORT)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache test-artifacts
