#!/usr/bin/env bash
# Build LeRobot's dataset loader (`lerobot` 0.4.4 on PyPI) in a virtualenv of its own, .venv-lerobot/, so
# that it never leaks into Vertebra's dependencies. The optional check tests/tools/test_lerobot_loader.py
# runs its python, in another process, to load a dataset that `vertebra data export --format lerobot`
# wrote with `lerobot.datasets.lerobot_dataset.LeRobotDataset`. Idempotent: a second run with nothing
# changed returns at once. Needs PyPI, the CPU wheel of torch 2.13.0 on this machine's disk (pip's
# find-links, /opt/wheels here) and FFmpeg's shared libraries (Debian: ffmpeg).
#
# Facts this relies on (checked against the packages themselves):
# - lerobot 0.4.4 pins torch<2.11, torchvision<0.26, torchcodec<0.11 and ~25 other packages (wandb,
#   diffusers, rerun-sdk, ...). We install it with --no-deps against torch 2.13.0, the torch Vertebra
#   uses, taken from the local CPU wheel only (--no-index: pip never picks or downloads a torch itself),
#   and add, each pinned and with --no-deps, just what `from lerobot.datasets.lerobot_dataset import
#   LeRobotDataset` and loading/iterating a dataset with video need (found by trial: import errors).
# - torchvision 0.28.0 is the release paired with torch 2.13 (it requires torch==2.13.0). PyPI's Linux
#   wheels of torchvision are CUDA builds: their C++ extension torchvision/_C.so links libtorch_cuda.so,
#   which the CPU torch lacks, so it does not load, and torchvision then fails on import at
#   `register_fake("torchvision::nms")` ("operator torchvision::nms does not exist"). The module
#   _vertebra_torchvision_cpu.py written below (run at start-up through a .pth file) declares, only when
#   that extension did not load, the schemas of the two operators that line needs (no kernels), so that
#   torchvision's Python side (the transforms LeRobot imports) works. Its C++ ops (nms, roi_align, ...)
#   stay unavailable, as torchvision.extension._has_ops() reports; the dataset loader uses none of them.
# - torchvision 0.28 no longer has torchvision.io.VideoReader, so LeRobot's "pyav" video backend fails
#   (AttributeError); its "torchcodec" backend works, with torchcodec 0.13.0 (PyPI's wheels are CPU builds
#   that load the system FFmpeg, libavcodec 58..62). Load with LeRobotDataset(..., video_backend="torchcodec").
#
# Writes its progress to stderr and everything to .venv-lerobot.log; on failure the log's last line is
# "[lerobot] FAILED: <why>" (the test skips with that reason), the exit code is 1, and there is no stamp
# (the test skips without it: a half-made venv never counts as ready).
set -uo pipefail
SELF=$(readlink -f "$0")
cd "$(dirname "$SELF")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv-lerobot"
LOG="$ROOT/.venv-lerobot.log"
LEROBOT_VERSION=0.4.4
TORCH_VERSION=2.13.0
PY=${PYTHON:-python3}
# What torch 2.13.0 declares (filelock, typing-extensions, setuptools, sympy, networkx, jinja2, fsspec),
# pinned to versions that also satisfy lerobot (setuptools<81) and datasets (fsspec<=2026.2.0).
TORCH_DEPS=(filelock==4.3.1 typing-extensions==4.16.0 setuptools==80.10.2 sympy==1.14.0 mpmath==1.3.0
  networkx==3.6.1 jinja2==3.1.6 MarkupSafe==3.0.4 fsspec==2026.2.0)
# The loader and what it imports, all installed with --no-deps.
LEROBOT_DEPS=("lerobot==$LEROBOT_VERSION" torchvision==0.28.0 torchcodec==0.13.0 av==15.1.0
  datasets==4.8.5 huggingface-hub==0.35.3 accelerate==1.15.0 safetensors==0.8.0 numpy==2.2.6 pandas==3.1.1
  python-dateutil==4.0.0 pyarrow==26.0.1 multiprocess==0.70.19 dill==0.4.1 xxhash==4.1.0 requests==2.34.2
  urllib3==2.8.0 idna==3.20 certifi==2026.10.19.post1 httpx==0.28.1 tqdm==4.70.1 PyYAML==6.0.4
  packaging==25.0 pillow==13.0.0)
say() { echo "[lerobot] $*" | tee -a "$LOG" >&2; }
fail() {
  say "FAILED: $*"
  exit 1
}

# Quick path: built by this very script (same content, so the same pins; same python) and still there.
stamp="$VENV/.vertebra-lerobot.sha256"
want=$( (cat "$SELF"; "$PY" -c 'import sys; print(sys.version)' 2>/dev/null; uname -m) | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  echo "[lerobot] up to date: $VENV (lerobot $LEROBOT_VERSION, torch $TORCH_VERSION)" >&2
  exit 0
fi
: > "$LOG"
start=$(date +%s)
rm -f "$stamp"

# 1. What it needs from the machine.
command -v "$PY" >/dev/null 2>&1 || fail "no $PY to build the virtualenv with (set PYTHON to a python3)"
"$PY" -c "import venv, ensurepip" 2>/dev/null || fail "$PY cannot create virtualenvs (Debian: python3-venv)"
py_ver=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || fail "$PY does not run"
if [ -x "$ROOT/.venv/bin/python" ]; then
  main_ver=$("$ROOT/.venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  [ "$py_ver" = "$main_ver" ] || fail "$PY is Python $py_ver but .venv has $main_ver (set PYTHON to a python $main_ver)"
fi
ldconfig -p 2>/dev/null | grep -Eq 'libavcodec\.so\.(58|59|60|61|62) ' ||
  fail "FFmpeg's shared libraries (libavcodec 58..62), which torchcodec needs, are missing (Debian: apt-get install ffmpeg)"

# 2. The virtualenv.
if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtualenv .venv-lerobot (Python $py_ver)"
  "$PY" -m venv "$VENV" >>"$LOG" 2>&1 || fail "could not create the virtualenv $VENV (see $LOG)"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check --no-deps --only-binary :all:)

# 3. torch 2.13.0 from the local CPU wheel only, then its dependencies.
say "installing torch==$TORCH_VERSION (the CPU wheel on this machine's disk) and its dependencies (see $LOG)"
"${PIP[@]}" --no-index "torch==$TORCH_VERSION" >>"$LOG" 2>&1 ||
  fail "no local wheel of torch==$TORCH_VERSION for pip (its find-links:" \
    "$(pip config get global.find-links 2>/dev/null || echo none)), and none is downloaded: $(grep -E 'ERROR' "$LOG" | tail -n1)"
"${PIP[@]}" "${TORCH_DEPS[@]}" >>"$LOG" 2>&1 ||
  fail "pip install of torch's dependencies failed: $(grep -E 'ERROR' "$LOG" | tail -n1)"

# 4. lerobot and what its dataset loader needs, none of them allowed to pull in anything else.
say "installing lerobot==$LEROBOT_VERSION and ${#LEROBOT_DEPS[@]} pinned packages, all --no-deps (see $LOG)"
"${PIP[@]}" "${LEROBOT_DEPS[@]}" >>"$LOG" 2>&1 ||
  fail "pip install lerobot==$LEROBOT_VERSION and its pins failed: $(grep -E 'ERROR' "$LOG" | tail -n1)"
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') ||
  fail "the virtualenv's python does not run"

# 5. torchvision's Python side without its (CUDA-only) C++ extension; see the top of this file.
cat > "$SITE/_vertebra_torchvision_cpu.py" <<'EOF'
"""Written by Vertebra's scripts/setup_lerobot.sh (see there why): lets torchvision import when its C++
extension did not load (PyPI's torchvision is a CUDA build; this torch is the CPU one). Only then, right
before torchvision imports torchvision._meta_registrations, declares the schemas of torchvision::nms and
torchvision::qnms (no kernels) that its unconditional register_fake calls need. Nothing else changes:
torchvision.extension._has_ops() stays False and its C++ ops stay unavailable."""
import importlib.abc
import sys

_LIB = None  # the torch.library.Library holding the declarations (kept alive here)


class _BeforeMetaRegistrations(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        global _LIB
        if name != "torchvision._meta_registrations":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        ext = sys.modules.get("torchvision.extension")
        if ext is not None and not ext._has_ops() and _LIB is None:
            import torch

            _LIB = torch.library.Library("torchvision", "FRAGMENT")
            for op in ("nms", "qnms"):
                _LIB.define(op + "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        return None  # the ordinary finders load the module


sys.meta_path.insert(0, _BeforeMetaRegistrations())
EOF
echo "import _vertebra_torchvision_cpu" > "$SITE/_vertebra_torchvision_cpu.pth" ||
  fail "could not write $SITE/_vertebra_torchvision_cpu.pth"

# 6. Check: the loader imports, torch is the CPU 2.13.0, and torchcodec decodes a small H.264 video
# (encoded here with PyAV) through the system FFmpeg, as the loader's "torchcodec" backend does.
say "checking the loader (imports, torch, torchcodec decoding through FFmpeg)"
check_dir=$(mktemp -d) || fail "mktemp failed"
HF_HUB_OFFLINE=1 HF_HOME="$check_dir/hf" HF_DATASETS_CACHE="$check_dir/hf/datasets" \
  "$VENV/bin/python" - "$check_dir/check.mp4" "$TORCH_VERSION" >>"$LOG" 2>&1 <<'EOF'
import sys
from importlib.metadata import version

import av
import numpy as np
import torch

from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: F401
from torchcodec.decoders import VideoDecoder

path, want_torch = sys.argv[1], sys.argv[2]
assert torch.__version__.split("+")[0] == want_torch, f"torch is {torch.__version__}, not {want_torch}"
with av.open(path, "w") as box:
    st = box.add_stream("libx264", rate=10)
    st.width, st.height, st.pix_fmt = 32, 32, "yuv420p"
    for i in range(10):
        frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 20 * i, np.uint8), format="rgb24")
        box.mux(st.encode(frame))
    box.mux(st.encode())
frames = VideoDecoder(path)[:]
assert tuple(frames.shape) == (10, 3, 32, 32), tuple(frames.shape)
print("lerobot", version("lerobot"), "torch", torch.__version__, "torchvision", version("torchvision"),
      "torchcodec", version("torchcodec"), "av", av.__version__, "datasets", version("datasets"))
EOF
rc=$?
rm -rf "$check_dir"
[ "$rc" -eq 0 ] || fail "the loader does not work: $(tail -n1 "$LOG")"

echo "$want" > "$stamp"
say "ready: $VENV/bin/python (lerobot $LEROBOT_VERSION on torch $TORCH_VERSION CPU; $(( $(date +%s) - start )) s)"
