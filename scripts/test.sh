#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Unitree's Python SDK in its own virtualenv, for the interoperability tests and `vertebra bench dds`
# (about 10 s the first time, instant after). If it cannot be built, those tests skip with the reason.
bash scripts/setup_unitree_sdk.sh || echo "[test] Unitree SDK not built: its interop tests will skip (.venv-unitree-sdk.log)" >&2
# Debian packages some tests need: Chromium opens a HIL report in a real (headless) browser
# (tests/tools/test_hil_report.py); FFmpeg's libraries are what LeRobot's video decoder (torchcodec)
# links against in the LeRobot loader check (tests/tools/test_lerobot_loader.py).
missing=()
for pkg in chromium ffmpeg; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[test] installing Debian's ${missing[*]} (the HIL report's browser test, the LeRobot loader check)" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# LeRobot's own dataset loader in its own virtualenv (lerobot pins an older torch): the check that it
# loads `vertebra data export`'s datasets (about a minute the first time, instant after). If it cannot
# be built, that test skips with the reason.
bash scripts/setup_lerobot.sh || echo "[test] LeRobot loader venv not built: its check will skip (.venv-lerobot.log)" >&2
exec .venv/bin/python -m pytest -q -p no:cacheprovider tests "$@"
