# wamdiff_ros developer entry points. `make demo` and `make test` each build the environment first
# when it is missing or older than requirements/ or setup.py, so both work alone on a fresh clone.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.wamdiff-setup-stamp
REQS   := $(wildcard requirements/*.txt)
ROS2_CLI ?= ../shared/ros2-cli
# ros2cli, ros2launch, launch and launch_ros as wheels (no package index has them); outside this
# repository they come from the system ROS 2
PYTEST_ARGS ?=
DEMO_ARGS ?=

export SDL_VIDEODRIVER ?= dummy
export SDL_AUDIODRIVER ?= dummy

.PHONY: setup demo test lint format clean-venv

setup: $(STAMP)

$(STAMP): $(REQS) setup.py package.xml $(wildcard $(ROS2_CLI)/install.sh)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python >= 3.10 is required (found " + sys.version.split()[0] + ")")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --disable-pip-version-check -q -r requirements/base.txt -r requirements/ros.txt -r requirements/dev.txt
	$(PIP) install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	@if [ -f $(ROS2_CLI)/install.sh ]; then bash $(ROS2_CLI)/install.sh $(VENV) >/dev/null && echo "ros2 CLI and launch installed from $(ROS2_CLI)"; \
	else echo "no $(ROS2_CLI): ros2 launch / the ros2 CLI come from a sourced ROS 2 (tests that need them skip)"; fi
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
