#!/usr/bin/env bash
# Set up Vertebra on a fresh Debian/Ubuntu machine, idempotently:
#   Debian packages (compiler, CMake, Mesa OSMesa for offscreen rendering), a virtualenv in .venv,
#   the pinned PyPI dependencies, and an editable build of the package (C++ core in build/).
# A second run with nothing changed takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY=${PYTHON:-python3}
say() { echo "[setup] $*" >&2; }

# 1. Debian packages.
need_apt=()
pkgs=(g++ cmake libosmesa6 xvfb xauth cyclonedds-dev cyclonedds-tools)  # Cyclone DDS 0.10.2: what Unitree robots run
"${PYTHON:-python3}" -c "import venv, ensurepip" 2>/dev/null || pkgs+=(python3-venv python3-dev)
for pkg in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# 2. Virtualenv and Python dependencies (pinned in requirements.txt).
if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtualenv .venv"
  "$PY" -m venv "$VENV"
fi
req_stamp="$VENV/.vertebra-requirements.sha256"
req_hash=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -f "$req_stamp" ] || [ "$(cat "$req_stamp")" != "$req_hash" ]; then
  say "installing Python dependencies (requirements.txt)"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements.txt
  echo "$req_hash" > "$req_stamp"
fi

# 3. Build and install the package (editable; the CMake build tree in build/ is reused).
# The editable install maps every Python module to its file when it is made: a module added, moved or
# removed (the file list, not its contents) needs a reinstall, as does any change to the C++ sources.
src_hash=$( (cat pyproject.toml CMakeLists.txt; find cpp -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.pyi' -o -name '*.idl' \) -print0 | sort -z | xargs -0 cat;
             find runtime policies drivers safety tools -name '*.py' | LC_ALL=C sort) | sha256sum | cut -d' ' -f1)
build_stamp="$VENV/.vertebra-build.sha256"
if [ ! -f "$build_stamp" ] || [ "$(cat "$build_stamp")" != "$src_hash" ] || ! "$VENV/bin/python" -c "import vertebra._rt" 2>/dev/null; then
  say "building the C++ core and installing vertebra (editable; first build takes a few minutes)"
  CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-build-isolation --no-deps -e .
  echo "$src_hash" > "$build_stamp"
fi
say "ready: $VENV/bin/vertebra"
