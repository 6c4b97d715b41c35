#!/usr/bin/env bash
# Build Unitree's official Python SDK (`unitree-sdk2` 1.0.1 on PyPI) in a virtualenv of its own,
# .venv-unitree-sdk/, so that it never leaks into Vertebra's dependencies. The interoperability
# tests (tests/drivers/test_unitree_sdk_interop.py) and `vertebra bench dds` run Unitree's side with
# its python, in another process, as on a robot. Idempotent: a second run with nothing changed
# returns at once. Needs what scripts/setup.sh installs (Debian's cyclonedds-dev 0.10.2, a C compiler).
#
# Facts this relies on (checked against the packages themselves):
# - unitree-sdk2 1.0.1 requires cyclonedds==0.10.2, whose PyPI release is a source distribution:
#   its build looks for the Cyclone DDS C library under $CYCLONEDDS_HOME (include/, lib/, bin/idlc).
#   Debian installs it under /usr with multiarch libraries (dpkg -L cyclonedds-dev cyclonedds-tools
#   libddsc0debian libcycloneddsidl0), so we assemble such a prefix out of symlinks to those files.
# - The 1.0.1 wheel lacks two things its own code loads: the package unitree_sdk2py/b2 (imported by
#   unitree_sdk2py/__init__.py; an empty package suffices), and the CRC library
#   unitree_sdk2py/utils/lib/crc_{amd64,aarch64}.so that utils/crc.py opens with ctypes on Linux
#   (shipped prebuilt in the SDK's git repository only). We compile the latter from the algorithm of
#   the SDK's own pure-Python reference, CRC._crc_py in utils/crc.py (CRC-32, polynomial 0x04C11DB7,
#   initial 0xFFFFFFFF, 32-bit words, no reflection), and check the two agree before we finish.
#
# Writes its progress to stderr and everything to .venv-unitree-sdk.log; on failure the log's last
# line is "[unitree-sdk] FAILED: <why>" (the tests skip with that reason) and the exit code is 1.
set -uo pipefail
SELF=$(readlink -f "$0")
cd "$(dirname "$SELF")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv-unitree-sdk"
LOG="$ROOT/.venv-unitree-sdk.log"
HOME_PREFIX="$VENV/cyclonedds-home"
SDK_VERSION=1.0.1
PY=${PYTHON:-python3}
say() { echo "[unitree-sdk] $*" | tee -a "$LOG" >&2; }
fail() {
  say "FAILED: $*"
  exit 1
}

# Quick path: built by this very script (same content, same python) and still there.
stamp="$VENV/.vertebra-unitree-sdk.sha256"
want=$( (cat "$SELF"; "$PY" -c 'import sys; print(sys.version)' 2>/dev/null; uname -m) | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  echo "[unitree-sdk] up to date: $VENV (unitree-sdk2 $SDK_VERSION)" >&2
  exit 0
fi
: > "$LOG"
start=$(date +%s)
rm -f "$stamp"

# 1. What it needs from the machine.
for pkg in cyclonedds-dev cyclonedds-tools; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
    fail "Debian package $pkg is not installed (bash scripts/setup.sh installs it)"
done
CC_BIN=${CC:-cc}
command -v "$CC_BIN" >/dev/null 2>&1 || CC_BIN=gcc
command -v "$CC_BIN" >/dev/null 2>&1 || fail "no C compiler (cc or gcc) to build the cyclonedds binding"
"$PY" -c "import venv, ensurepip" 2>/dev/null || fail "$PY cannot create virtualenvs (Debian: python3-venv)"

# 2. The virtualenv.
if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtualenv .venv-unitree-sdk"
  "$PY" -m venv "$VENV" >>"$LOG" 2>&1 || fail "could not create the virtualenv $VENV (see $LOG)"
fi

# 3. CYCLONEDDS_HOME: Debian's Cyclone DDS 0.10.2 as the prefix the binding's build expects.
say "assembling CYCLONEDDS_HOME from Debian's Cyclone DDS ($HOME_PREFIX)"
rm -rf "$HOME_PREFIX"
mkdir -p "$HOME_PREFIX/include" "$HOME_PREFIX/lib" "$HOME_PREFIX/bin"
files=$(dpkg -L cyclonedds-dev cyclonedds-tools libddsc0debian libcycloneddsidl0 2>/dev/null) ||
  fail "dpkg -L could not list the Cyclone DDS packages"
# headers: every top-level folder or file the packages install under /usr/include
for inc in $(echo "$files" | grep '^/usr/include/[^/]*$'); do
  ln -sfn "$inc" "$HOME_PREFIX/include/$(basename "$inc")"
done
# libraries (multiarch folder) and the CMake package config
for lib in $(echo "$files" | grep -E '^/usr/lib/[^/]+/lib(ddsc|cycloneddsidl)[^/]*$'); do
  ln -sfn "$lib" "$HOME_PREFIX/lib/$(basename "$lib")"
done
cmake_dir=$(echo "$files" | grep -E '^/usr/lib/[^/]+/cmake/CycloneDDS$' | head -n1)
[ -n "$cmake_dir" ] && mkdir -p "$HOME_PREFIX/lib/cmake" && ln -sfn "$cmake_dir" "$HOME_PREFIX/lib/cmake/CycloneDDS"
for tool in idlc ddsperf; do
  bin=$(echo "$files" | grep -E "^/usr/bin/$tool\$" | head -n1)
  [ -n "$bin" ] && ln -sfn "$bin" "$HOME_PREFIX/bin/$tool"
done
[ -e "$HOME_PREFIX/include/dds/dds.h" ] || fail "dds/dds.h not found in cyclonedds-dev's files"
[ -e "$HOME_PREFIX/lib/libddsc.so" ] || fail "libddsc.so not found in cyclonedds-dev's files"
[ -e "$HOME_PREFIX/bin/idlc" ] || fail "idlc not found in cyclonedds-tools' files"

# 4. The SDK and its cyclonedds binding, built against that prefix (never a wheel with its own Cyclone).
say "installing unitree-sdk2==$SDK_VERSION (builds cyclonedds==0.10.2 against Debian's library; see $LOG)"
CYCLONEDDS_HOME="$HOME_PREFIX" "$VENV/bin/pip" install --disable-pip-version-check --no-binary cyclonedds \
  "unitree-sdk2==$SDK_VERSION" >>"$LOG" 2>&1 ||
  fail "pip install unitree-sdk2==$SDK_VERSION failed: $(grep -E 'error|Error' "$LOG" | tail -n1)"
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') ||
  fail "the virtualenv's python does not run"
PKG="$SITE/unitree_sdk2py"
[ -f "$PKG/__init__.py" ] || fail "unitree_sdk2py not found in $SITE after pip install"

# 5. What the 1.0.1 wheel lacks (see the top of this file).
if [ ! -f "$PKG/b2/__init__.py" ]; then
  say "adding the empty package unitree_sdk2py/b2 that the 1.0.1 wheel lacks"
  mkdir -p "$PKG/b2" && : > "$PKG/b2/__init__.py" || fail "could not write $PKG/b2/__init__.py"
fi
case "$(uname -m)" in
  x86_64) crc_lib=crc_amd64.so ;;
  aarch64) crc_lib=crc_aarch64.so ;;
  *) crc_lib="" ;;  # utils/crc.py uses its pure-Python CRC there
esac
if [ -n "$crc_lib" ] && [ ! -f "$PKG/utils/lib/$crc_lib" ]; then
  say "building unitree_sdk2py/utils/lib/$crc_lib (crc32_core, the SDK's CRC._crc_py in C)"
  mkdir -p "$PKG/utils/lib"
  src="$VENV/crc32_core.c"
  cat > "$src" <<'EOF'
/* crc32_core(words, n): the CRC that unitree_sdk2py/utils/crc.py asks of its ctypes library, the
 * same computation as its pure-Python CRC._crc_py: CRC-32 over 32-bit words, MSB first, polynomial
 * 0x04C11DB7, initial value 0xFFFFFFFF, no reflection, no final XOR. */
#include <stdint.h>
uint32_t crc32_core(const uint32_t* words, uint32_t n) {
  uint32_t crc = 0xFFFFFFFFu;
  for (uint32_t i = 0; i < n; ++i) {
    for (uint32_t bit = 1u << 31; bit != 0; bit >>= 1) {
      const int top = (crc & 0x80000000u) != 0;
      crc <<= 1;
      if (top) crc ^= 0x04C11DB7u;
      if (words[i] & bit) crc ^= 0x04C11DB7u;
    }
  }
  return crc;
}
EOF
  "$CC_BIN" -O2 -shared -fPIC -o "$PKG/utils/lib/$crc_lib" "$src" >>"$LOG" 2>&1 ||
    fail "could not compile $crc_lib with $CC_BIN (see $LOG)"
fi

# 6. Check: the SDK imports, its cyclonedds binding links Debian's libddsc, and its CRC library
# agrees with its own pure-Python reference.
say "checking the SDK (import, libddsc, CRC)"
"$VENV/bin/python" - >>"$LOG" 2>&1 <<'EOF' || fail "the SDK does not work: $(tail -n1 "$LOG")"
import random
from importlib.metadata import version
import cyclonedds  # noqa: F401
import unitree_sdk2py
from unitree_sdk2py.core.channel import ChannelFactoryInitialize  # noqa: F401
from unitree_sdk2py.utils.crc import CRC
crc = CRC()
rng = random.Random(13)
for n in (1, 2, 7, 250, 522):
    words = [rng.getrandbits(32) for _ in range(n)]
    a, b = crc._crc_py(words), (crc._crc_ctypes(words) if hasattr(crc, "crc_lib") else crc._crc_py(words))
    assert a == b, f"CRC library disagrees with CRC._crc_py on {n} words: {b:#x} != {a:#x}"
print("cyclonedds", version("cyclonedds"), "unitree-sdk2", version("unitree-sdk2"), "unitree_sdk2py from", unitree_sdk2py.__file__)
EOF
if command -v ldd >/dev/null 2>&1; then
  clayer=$(ls "$SITE"/cyclonedds/_clayer*.so 2>/dev/null | head -n1)
  [ -n "$clayer" ] && { ldd "$clayer" | grep -q "libddsc" || fail "cyclonedds' _clayer does not link libddsc"; }
fi

echo "$want" > "$stamp"
say "ready: $VENV/bin/python (unitree-sdk2 $SDK_VERSION on Debian's Cyclone DDS; $(( $(date +%s) - start )) s)"
