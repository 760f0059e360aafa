#!/usr/bin/env bash
# Set up everything (a .venv with the package and its test extra, CPU torch among it) and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# two workers (pytest-xdist): most tests wait on subprocesses and retries, so two cores run two at once
exec .venv/bin/python -m pytest -n "${ATR_TEST_WORKERS:-2}" --dist worksteal "$@"
