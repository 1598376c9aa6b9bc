# foldatlas: the two commands of the README's quick start, and helpers.
#   make demo   create .venv and run the whole workflow on the bundled example (CPU, offline)
#   make test   create .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: demo test lint format config-docs weights bench-ingest clean

$(BIN)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements-dev.txt
	# the library itself (scripts/foldatlas), editable: one way to import it everywhere
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

demo: $(BIN)/.installed
	$(BIN)/snakemake --cores $(CORES) --configfile config/demo.yaml
	@echo "demo finished: see results/ (summary in results/atlas/summary.json once the atlas stage runs)"

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q tests

lint: $(BIN)/.installed
	$(BIN)/snakemake --lint --configfile config/demo.yaml
	$(BIN)/snakefmt --check Snakefile workflow/rules

format: $(BIN)/.installed
	$(BIN)/snakefmt Snakefile workflow/rules

bench-ingest: $(BIN)/.installed
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python bench/ingest_vs_seqkit.py

config-docs: $(BIN)/.installed
	$(BIN)/python scripts/config_docs.py --write config/README.md
	$(BIN)/python scripts/schema_docs.py --write README.md

# Download ESMFold v1 (about 8.5 GB) once, on a machine with a network: WEIGHTS=dir
WEIGHTS ?= weights/esmfold_v1
weights: $(BIN)/.installed
	$(BIN)/python scripts/download_weights.py --out $(WEIGHTS)

clean:
	rm -rf results .snakemake
