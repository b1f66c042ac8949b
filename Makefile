# The two commands of README.md, and a few for maintainers. Each target sets up what it needs.
.PHONY: serve test bench build setup setup-tests slurm-up slurm-down clean

VENV := .venv
export NO_MKDOCS_2_WARNING := 1

## serve: set everything up and preview the site on http://127.0.0.1:8000
serve: setup
	$(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8000

## test: set everything up (venv, Debian packages, a local Slurm) and run every test
test: setup-tests
	$(VENV)/bin/python -m pytest

## bench: the benchmark table (build time, page loads, examples' full runs)
bench: setup-tests
	$(VENV)/bin/python -m bench

## build: the strict build into site/
build: setup
	$(VENV)/bin/mkdocs build --strict

setup:
	scripts/setup.sh

setup-tests:
	scripts/setup.sh --tests

## slurm-up / slurm-down: the tests' throwaway single-node Slurm, by hand (see README)
slurm-up: setup-tests
	$(VENV)/bin/python -m tests.slurm_cluster up

slurm-down:
	$(VENV)/bin/python -m tests.slurm_cluster down

clean:
	rm -rf site .cache docs/assets/vendor screenshots results
