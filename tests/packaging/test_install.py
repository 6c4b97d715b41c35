"""A non-editable `pip install .` into a fresh virtualenv runs the simulated G1, far from the source
checkout: the C++ core, the Python packages, the configs (shipped inside the package as
vertebra/configs) and the policy packages all come from the installed wheel.

The fresh venv sees this project's already-installed dependencies through a .pth file (PyPI is not
reachable from every test machine, and the point here is the project's own packaging, not pip's
resolver); the build is a full, separate CMake build (a few minutes on 2 cores)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_non_editable_install_in_a_fresh_venv_runs_the_simulated_g1(tmp_path: Path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    (site / "vertebra-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    env["CMAKE_BUILD_PARALLEL_LEVEL"] = str(os.cpu_count() or 2)
    build = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-build-isolation", "--no-deps",
         "-C", f"build-dir={tmp_path / 'build'}", str(REPO)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1500)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    installed = site / "vertebra"
    assert (installed / "configs" / "robots" / "g1.yaml").is_file()
    assert (installed / "policies" / "packages" / "g1_vla" / "policy.yaml").is_file()
    assert (installed / "_rt.pyi").is_file()  # the extension's type stub ships with it
    where = subprocess.check_output(
        [str(py), "-c", "import vertebra._rt, vertebra.runtime.config as c; print(vertebra._rt.__file__); "
                        "print(c.CONFIG_DIR)"], cwd=tmp_path, env=env, text=True).split()
    assert all(Path(w).resolve().is_relative_to(installed.resolve()) for w in where), where
    out = subprocess.run([str(env_dir / "bin" / "vertebra"), "sim", "--robot", "g1", "--lockstep", "--duration", "1",
                          "--json", "--event-log", str(tmp_path / "events.jsonl")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert report["faults"] == [] and report["mode"] == "hold"
    assert abs(report["base_height_m"] - report["standing_height_m"]) < 0.03
    assert sys.version_info >= (3, 10)
