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

# mariadbd (or mysqld) must exist, and for the Galera tests Debian's galera-4 provider and
# rsync (its state transfer); as root, install Debian's packages for what is missing.
server-binary:
	@missing=""; \
	if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ] && [ ! -x /usr/sbin/mysqld ] \
	    && [ -z "$$MSPLUGIN_MYSQLD" ]; then missing="mariadb-server"; fi; \
	[ -f /usr/lib/galera/libgalera_smm.so ] || missing="$$missing galera-4"; \
	command -v rsync >/dev/null 2>&1 || missing="$$missing rsync"; \
	if [ -z "$$missing" ]; then \
	  exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Debian's$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else \
	  echo "Missing:$$missing. Install them, e.g. 'sudo apt-get install$$missing' (or set MSPLUGIN_MYSQLD=/path/to/mariadbd for the server)." >&2; \
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
