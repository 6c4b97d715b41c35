#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Unitree's Python SDK in its own virtualenv, for the interoperability tests and `vertebra bench dds`
# (about 10 s the first time, instant after). If it cannot be built, those tests skip with the reason.
bash scripts/setup_unitree_sdk.sh || echo "[test] Unitree SDK not built: its interop tests will skip (.venv-unitree-sdk.log)" >&2
# Debian's Chromium: a test opens a HIL report in a real (headless) browser (tests/tools/test_hil_report.py).
if ! dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed"; then
  echo "[test] installing Debian's chromium (the HIL report's browser test)" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
exec .venv/bin/python -m pytest -q -p no:cacheprovider tests "$@"
