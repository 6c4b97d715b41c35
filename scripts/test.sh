#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Unitree's Python SDK in its own virtualenv, for the interoperability tests and `vertebra bench dds`
# (about 10 s the first time, instant after). If it cannot be built, those tests skip with the reason.
bash scripts/setup_unitree_sdk.sh || echo "[test] Unitree SDK not built: its interop tests will skip (.venv-unitree-sdk.log)" >&2
exec .venv/bin/python -m pytest -q -p no:cacheprovider tests "$@"
