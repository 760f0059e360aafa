#!/usr/bin/env bash
# Set up everything (a .venv with the package, its test extra and CPU torch) and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# torch only for the one real torchrun test; pinned: this version installs a CPU build from local wheels.
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0 >/dev/null 2>&1 \
    || echo "note: torch==2.13.0 could not be installed; the real torchrun test will be skipped" >&2
fi
# two workers (pytest-xdist): most tests wait on subprocesses and retries, so two cores run two at once
exec .venv/bin/python -m pytest -n "${ATR_TEST_WORKERS:-2}" --dist worksteal "$@"
