# Two commands for a new user: `make run` and `make test`. Both install what is missing:
# ffmpeg and mkvtoolnix (with apt-get, when they are absent; strace, postgresql and chromium
# too for the tests) and this package into .venv/.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || command -v sudo)
APT_INSTALL := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends

.PHONY: run test lint setup system-deps test-deps clean bench bench-quick bench-quality bench-pages

run: setup
	$(BIN)/videoarchiver run

test: setup test-deps lint
	$(BIN)/pytest -q --durations=20

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Byte-compiled ahead: where Python may not write its caches (PYTHONDONTWRITEBYTECODE set,
# a read-only checkout) every start would compile each module again (60 ms of CPU).
setup: system-deps $(STAMP)
	-@$(BIN)/python -m compileall -q src

# $(call install-missing,COMMANDS,PACKAGES): apt-get install PACKAGES unless every COMMAND exists.
define install-missing
	@missing=0; for command in $(1); do command -v $$command >/dev/null 2>&1 || missing=1; done; \
	if [ $$missing -eq 0 ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
		echo "$(1) missing and apt-get is not available here: install $(2)" \
		     "with your package manager, then run make again." >&2; \
		exit 1; \
	fi; \
	echo "Installing $(2) with apt-get ..."; \
	$(SUDO) apt-get update -qq && $(APT_INSTALL) $(2)
endef

system-deps:
	$(call install-missing,ffmpeg ffprobe mkvpropedit,ffmpeg mkvtoolnix)

# The tests aim kills at one system call with strace, start a throwaway PostgreSQL
# (Debian's postgresql: initdb and pg_ctl live in /usr/lib/postgresql/<version>/bin) and
# drive the web page in Debian's Chromium.
test-deps:
	$(call install-missing,strace,strace)
	$(call install-missing,chromium,chromium)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
		command -v apt-get >/dev/null 2>&1 || { echo "PostgreSQL is missing: install postgresql" >&2; exit 1; }; \
		echo "Installing postgresql with apt-get ..."; \
		$(SUDO) apt-get update -qq && $(APT_INSTALL) postgresql; }

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "videoarchiver needs Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) --version 2>&1)" >&2; exit 1; }
	@$(PYTHON) -m venv $(VENV) >/dev/null 2>&1 || { \
		rm -rf $(VENV); \
		command -v apt-get >/dev/null 2>&1 || { echo "$(PYTHON) cannot create a virtual environment (install its venv module)" >&2; exit 1; }; \
		echo "Installing python3-venv with apt-get ..."; \
		$(SUDO) apt-get update -qq && $(APT_INSTALL) python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

clean:
	rm -rf $(VENV) build src/*.egg-info .mypy_cache .ruff_cache .pytest_cache

bench: setup
	$(BIN)/python bench/bench.py

bench-quick: setup
	$(BIN)/python bench/bench.py --quick --out bench/results-quick.md

bench-quality: setup
	$(BIN)/python bench/quality.py

bench-pages: setup
	$(BIN)/python bench/pages.py
