#!/usr/bin/env bash
# Create .venv and install Uni-ViGU Studio. `--dev` adds the test tools and the headless browser.
# Idempotent: a second run only checks what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
REQ=requirements.txt
[ "${1:-}" = "--dev" ] && REQ=requirements-dev.txt
# torch==2.13.0 resolves to the local CPU build; installing it first keeps other packages from pulling CUDA wheels.
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install -q --disable-pip-version-check -r "$REQ"
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
if [ "${1:-}" = "--dev" ]; then
  bash scripts/install_browser.sh
fi
