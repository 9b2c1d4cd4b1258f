# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test setup system-deps bench lint soak

# The server alone, for `make run`: the package and its runtime dependencies, nothing else.
# PYTHON is the first python3 on PATH (CI runs with the system's PATH only, see .ci/run):
# refused with a clear line when older than 3.11 or without venv/ensurepip (Debian's
# python3-venv), rather than failing later inside pip.
$(BIN)/trioredis-server: pyproject.toml
	@$(PYTHON) -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || \
	  { echo "$(PYTHON) ($$(command -v $(PYTHON))) is not Python >= 3.11 with venv: run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

# The test extras on top (pytest, redis-py, ruff...), for `make test`, `make lint`, `make setup`.
$(VENV)/.test-extras: $(BIN)/trioredis-server
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.test-extras

# Debian packages the tests talk to: redis-cli, redis-server to compare against, nutcracker (twemproxy).
system-deps:
	@if ! command -v redis-cli >/dev/null || ! command -v redis-server >/dev/null || ! command -v nutcracker >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-tools redis-server nutcracker >/dev/null; \
	    systemctl stop redis-server >/dev/null 2>&1 || service redis-server stop >/dev/null 2>&1 || true; \
	    systemctl stop nutcracker >/dev/null 2>&1 || service nutcracker stop >/dev/null 2>&1 || true; \
	  else echo "redis-tools/redis-server missing and not root: tests that need them will skip"; fi; \
	fi

# ARGS: extra options, e.g. make run ARGS="--port 7000 --appendfsync always"
run: $(BIN)/trioredis-server
	$(BIN)/trioredis-server config/trioredis.conf $(ARGS)

test: setup system-deps
	$(BIN)/python -m pytest -q -p no:randomly tests

lint: setup
	$(BIN)/ruff check .

bench: setup system-deps
	$(BIN)/python bench/run.py

# Three instances (AOF on, ports 7001-7003) behind twemproxy on 22121; Ctrl-C stops them.
.PHONY: cluster-demo
cluster-demo: setup system-deps
	PYTHON=$(BIN)/python scripts/cluster-demo.sh

# Randomized crash soak (kill -9 during writes, rewrites, saves, loading; torn tails) under every
# fsync policy; bounded: SOAK_ARGS="--rounds 200 --time-limit 300" by default.
SOAK_ARGS ?= --rounds 200 --time-limit 300
soak: setup
	$(BIN)/python scripts/soak.py $(SOAK_ARGS)
