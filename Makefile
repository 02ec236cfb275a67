# Two commands for a fresh machine: `make demo` and `make test`.
# Each creates (or reuses) .venv, installs msplugin with its dependencies, and makes sure a
# MariaDB server binary exists.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench server-binary clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# mariadbd (or mysqld) must exist; as root, install Debian's mariadb-server when it is missing.
server-binary:
	@if command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || [ -x /usr/sbin/mysqld ] \
	    || [ -n "$$MSPLUGIN_MYSQLD" ]; then \
	  exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "No MariaDB server binary: installing Debian's mariadb-server"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server; \
	else \
	  echo "No MariaDB server binary (mariadbd) found. Install one, e.g. 'sudo apt-get install mariadb-server', or set MSPLUGIN_MYSQLD=/path/to/mariadbd." >&2; \
	  exit 1; \
	fi

demo: $(STAMP) server-binary
	$(PY) -m msplugin demo

lint: $(STAMP)
	$(VENV)/bin/ruff format --check msplugin tests bench examples
	$(VENV)/bin/ruff check msplugin tests bench examples
	$(VENV)/bin/mypy --strict msplugin

test: lint server-binary
	$(PY) -m pytest

# The plot extra (matplotlib) is only for the benchmark's chart.
$(VENV)/.plot: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,plot]'
	touch $@

bench: $(STAMP) $(VENV)/.plot server-binary
	$(PY) bench/suite.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
