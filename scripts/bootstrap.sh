#!/usr/bin/env bash
# Create .venv (if missing) and install aws-train-remote with its test extra (or ATR_EXTRAS) into it.
# Used by scripts/demo.sh and scripts/test.sh; needs only python3 (3.9+) with venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# the extras to install: the test extra by default (scripts/test.sh); the demo needs only the sandbox
extras=${ATR_EXTRAS:-test}
stamp=.venv/.atr-installed
want=$( (cat setup.cfg pyproject.toml; echo "$extras") | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log=$(mktemp)
  if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extras]" >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
  fi
  rm -f "$log"
  echo "$want" > "$stamp"
fi
