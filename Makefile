# wamdiff_ros developer entry points. `make demo` and `make test` each build the environment first
# when it is missing or older than requirements/ or setup.py, so both work alone on a fresh clone.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.wamdiff-setup-stamp
REQS   := $(wildcard requirements/*.txt)
PYTEST_ARGS ?=
DEMO_ARGS ?=

export SDL_VIDEODRIVER ?= dummy
export SDL_AUDIODRIVER ?= dummy

.PHONY: setup demo test lint format clean-venv

setup: $(STAMP)

$(STAMP): $(REQS) setup.py package.xml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python >= 3.10 is required (found " + sys.version.split()[0] + ")")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --disable-pip-version-check -q -r requirements/base.txt -r requirements/ros.txt -r requirements/dev.txt
	$(PIP) install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)
	@echo "environment ready in $(VENV) ($$(du -sh $(VENV) | cut -f1))"

demo: setup
	$(VENV)/bin/wamdiff demo $(DEMO_ARGS)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean-venv:
	rm -rf $(VENV)
