#!/usr/bin/env bash
# Set up everything (a .venv with the package and its test extra) and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
