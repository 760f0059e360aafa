#!/usr/bin/env bash
# Create .venv (if missing) and install aws-train-remote with its test extra into it.
# Used by scripts/demo.sh and scripts/test.sh; needs only python3 (3.9+) with venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.atr-installed
want=$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log=$(mktemp)
  if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]' >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
  fi
  rm -f "$log"
  echo "$want" > "$stamp"
fi
