#!/usr/bin/env bash
# Set up everything (a .venv with the package and its test extra, CPU torch among it) and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# three workers (pytest-xdist) on two cores: most tests wait on subprocesses, sleeps and retries, so a
# third worker fills the idle time (measured on 2 cores: 8m41s with two workers, 6m37s with three)
exec .venv/bin/python -m pytest -n "${ATR_TEST_WORKERS:-3}" --dist worksteal "$@"
