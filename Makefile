# The two commands of README.md, and a few for maintainers. Each target sets up what it needs.
.PHONY: serve test bench results build setup setup-tests slurm-up slurm-down clean

VENV := .venv
export NO_MKDOCS_2_WARNING := 1

## serve: set everything up and preview the site on http://127.0.0.1:8000
serve: setup
	$(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8000

## test: set everything up (venv, Debian packages, a local Slurm) and run every test, in one process per core
test: setup-tests
	$(VENV)/bin/python -m pytest --numprocesses=auto --dist=loadgroup --no-loadscope-reorder

## bench: measure and print the benchmark table (build time, page loads, examples' full runs); writes nothing under docs/
bench: setup-tests
	$(VENV)/bin/python -m bench

## results: re-run the examples' full modes and rewrite docs/results/ (NAME=<example> for one); refuses on a busy machine
results: setup-tests
	$(VENV)/bin/python -m tools.results $(NAME)

## build: the strict build into site/
build: setup
	$(VENV)/bin/mkdocs build --strict

setup:
	scripts/setup.sh

setup-tests:
	scripts/setup.sh --tests

## slurm-up / slurm-down: the tests' throwaway single-node Slurm, by hand (see README)
slurm-up: setup-tests
	$(VENV)/bin/python -m tools.slurm_cluster up

slurm-down:
	$(VENV)/bin/python -m tools.slurm_cluster down

clean:
	rm -rf site .cache docs/assets/vendor screenshots results
