"""The systemd units `vertebra service` generates from a deploy config, and `systemd-analyze verify` on them."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from vertebra.runtime.cli import main
from vertebra.runtime.deploy import DeployConfig
from vertebra.runtime.service.systemd import (
    ServiceUnits,
    SystemdError,
    UnitFile,
    format_seconds,
    generate_units,
    quote_exec_arg,
    read_exit_record,
    stop_timeout_s,
    verify_units,
    vertebra_executable,
    write_exit_record,
)

EXE = Path(sys.executable).parent / "vertebra"  # the venv's console script: systemd-analyze checks it exists
SANDBOXING_THAT_SPLITS_SHM = ("PrivateDevices", "PrivateIPC", "RemoveIPC", "DynamicUser", "PrivateTmp",
                              "PrivateMounts", "TemporaryFileSystem", "InaccessiblePaths")

ROBOT_DEPLOY = """\
robot: g1
driver: {type: mujoco}
safety: g1
loop: {cpu: 3}
control: {group: operators}
service:
  user: robot
  group: robot
  watchdog_s: 0.5
  rtprio: 90
  cpu_affinity: [2, 1, 3]
  restart_s: 3
  start_limit_burst: 4
  start_limit_interval_s: 300
  stop_margin_s: 20
"""


def parse(unit: UnitFile) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in unit.text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, value = line.split("=", 1)
        current.setdefault(key, []).append(value)
    return sections


def one(sections: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    values = sections[section][key]
    assert len(values) == 1, (key, values)
    return values[0]


def deploy_file(tmp_path: Path, text: str, name: str = "g1_robot") -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(text)
    return p


@pytest.fixture
def robot_deploy(tmp_path) -> DeployConfig:
    return DeployConfig.load(deploy_file(tmp_path, ROBOT_DEPLOY))


def test_runtime_unit_has_the_directives_with_the_deploy_configs_values(robot_deploy):
    units = generate_units(robot_deploy, exe=EXE)
    assert units.runtime.name == "vertebra-g1_robot.service"
    u = parse(units.runtime)
    path = str(Path(robot_deploy.file).resolve())
    expected = {"Type": "notify", "NotifyAccess": "main", "WatchdogSec": "500ms", "Restart": "on-failure",
                "RestartSec": "3s", "LimitRTPRIO": "90", "LimitMEMLOCK": "infinity", "KillMode": "mixed",
                "User": "robot", "Group": "robot", "CPUAffinity": "1 2 3", "RuntimeDirectory": "vertebra",
                "RuntimeDirectoryMode": "0751",  # control.group 'operators' traverses to the 0660 socket
                "RuntimeDirectoryPreserve": "yes", "ExecStart": f"{EXE} run --config {path}"}
    for key, value in expected.items():
        assert one(u, "Service", key) == value, key
    assert "operators" in one(u, "Service", "SupplementaryGroups").split()
    assert one(u, "Unit", "StartLimitBurst") == "4"
    assert one(u, "Unit", "StartLimitIntervalSec") == "300s"
    assert "StartLimitBurst" not in u["Service"]  # [Unit] is where systemd reads them
    assert one(u, "Unit", "Requires") == "vertebra-guard-g1_robot.service"
    assert one(u, "Unit", "After").split() == ["network-online.target", "vertebra-guard-g1_robot.service"]
    assert one(u, "Unit", "Wants") == "network-online.target"
    assert one(u, "Install", "WantedBy") == "multi-user.target"
    assert one(u, "Service", "ExecStopPost") == f"-{EXE} service note-exit --config {path}"
    assert "AmbientCapabilities" not in u["Service"]  # the limits are enough (module docstring)


def test_stop_timeout_covers_the_controlled_stop_and_the_recorders_close(robot_deploy):
    settle = robot_deploy.safety_settings().settle_duration_s()
    assert settle > 0  # the g1's keyframes and hold
    u = parse(generate_units(robot_deploy, exe=EXE).runtime)
    assert one(u, "Service", "TimeoutStopSec") == format_seconds(settle + 20)
    assert stop_timeout_s(robot_deploy) == pytest.approx(settle + 20)
    g = parse(generate_units(robot_deploy, exe=EXE).guard)  # type: ignore[arg-type]
    assert float(one(g, "Service", "TimeoutStopSec").rstrip("s")) > settle


def test_guard_unit_is_notify_restarts_always_and_is_ordered_before(robot_deploy):
    units = generate_units(robot_deploy, exe=EXE)
    assert units.guard is not None and units.names() == ["vertebra-guard-g1_robot.service", "vertebra-g1_robot.service"]
    g = parse(units.guard)
    assert one(g, "Unit", "Before") == "vertebra-g1_robot.service"
    assert one(g, "Unit", "StartLimitIntervalSec") == "0"
    for key, value in {"Type": "notify", "NotifyAccess": "main", "Restart": "always", "WatchdogSec": "500ms",
                       "LimitRTPRIO": "90", "LimitMEMLOCK": "infinity", "User": "robot",
                       "RuntimeDirectory": "vertebra", "RuntimeDirectoryPreserve": "yes"}.items():
        assert one(g, "Service", key) == value, key
    assert one(g, "Service", "ExecStart").split()[1:3] == ["guard", "--config"]
    assert "CPUAffinity" not in g["Service"]  # never confined to the loop's core


def test_both_units_share_dev_shm_and_the_runtime_directory(robot_deploy):
    units = generate_units(robot_deploy, exe=EXE)
    parsed = [parse(u) for u in units.files()]
    for u in parsed:
        assert not set(SANDBOXING_THAT_SPLITS_SHM) & set(u["Service"]), u["Service"].keys()
    assert {one(u, "Service", "RuntimeDirectory") for u in parsed} == {"vertebra"}
    environments = {one(u, "Service", "Environment") for u in parsed}
    assert environments == {"XDG_RUNTIME_DIR=%t XDG_STATE_HOME=%S PYTHONUNBUFFERED=1"}


@pytest.mark.parametrize("service, loop_cpu, expected", [
    ("", "3", "3"),                           # the loop's core
    ("service: {cpu_affinity: [0, 1]}", "3", "0 1"),  # housekeeping cores; the loop pins itself to 3
    ("", "null", None),
])
def test_cpu_affinity_from_service_or_loop(tmp_path, service, loop_cpu, expected):
    text = f"robot: go2\ndriver: {{type: mujoco}}\nloop: {{cpu: {loop_cpu}}}\n{service}\n"
    u = parse(generate_units(DeployConfig.load(deploy_file(tmp_path, text, "go2_x")), exe=EXE).runtime)
    assert u["Service"].get("CPUAffinity") == ([expected] if expected else None)


def test_without_a_guard_there_is_one_unit_and_no_requirement(tmp_path):
    text = "robot: go2\ndriver: {type: mujoco}\nguard: {enabled: false}\n"
    d = DeployConfig.load(deploy_file(tmp_path, text, "go2_x"))
    units = generate_units(d, exe=EXE)
    assert units.guard is None and units.names() == ["vertebra-go2_x.service"]
    u = parse(units.runtime)
    assert "Requires" not in u["Unit"] and one(u, "Unit", "After") == "network-online.target"
    assert one(u, "Service", "RuntimeDirectoryMode") == "0750"


def test_exec_arguments_are_quoted_and_escaped():
    assert quote_exec_arg("/etc/vertebra/g1.yaml") == "/etc/vertebra/g1.yaml"
    assert quote_exec_arg("/srv/my configs/g1.yaml") == '"/srv/my configs/g1.yaml"'
    assert quote_exec_arg("/srv/100%/$HOME") == "/srv/100%%/$$HOME"
    assert format_seconds(1.0) == "1s" and format_seconds(0.25) == "250ms" and format_seconds(34.5) == "34.5s"


def test_a_missing_executable_is_refused_with_what_is_valid(tmp_path):
    with pytest.raises(SystemdError, match="valid: the installed `vertebra` script"):
        vertebra_executable(tmp_path / "nope")


needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed (Debian package systemd)")


@needs_analyze
def test_systemd_analyze_verify_passes_on_both_units(tmp_path):
    folder = tmp_path / "robot configs"  # a blank in the path: ExecStart quoting is checked too
    folder.mkdir()
    units = generate_units(DeployConfig.load(deploy_file(folder, ROBOT_DEPLOY)), exe=EXE)
    result = verify_units(units)
    assert result.ok, result.findings
    assert result.findings == []


@needs_analyze
def test_verify_reports_directives_systemd_ignores(robot_deploy):
    units = generate_units(robot_deploy, exe=EXE)
    broken = UnitFile(units.runtime.name, units.runtime.text.replace("KillMode=mixed", "KillMode=gently"))
    result = verify_units(ServiceUnits(broken, units.guard))
    assert not result.ok  # systemd-analyze itself exits 0 here: the warning is the finding
    assert any("kill mode" in f.lower() for f in result.findings), result.findings


def test_exit_record_round_trip(tmp_path):
    env = {"RUNTIME_DIRECTORY": str(tmp_path), "SERVICE_RESULT": "watchdog", "EXIT_CODE": "dumped",
           "EXIT_STATUS": "ABRT"}
    assert read_exit_record("g1_robot", env) is None  # first start since boot
    write_exit_record("g1_robot", env)
    rec = read_exit_record("g1_robot", env)
    assert rec is not None
    assert (rec["service_result"], rec["exit_code"], rec["exit_status"]) == ("watchdog", "dumped", "ABRT")
    assert (tmp_path / "last-exit-g1_robot.json").is_file()


# -- the command -------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["service"], ["service", "install"], ["service", "print"], ["service", "verify"],
                                  ["service", "note-exit"]])
def test_every_service_command_has_help(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv + ["--help"])
    assert e.value.code == 0
    assert "usage: vertebra service" in capsys.readouterr().out


def test_install_writes_both_units_and_dry_run_writes_nothing(tmp_path, capsys):
    cfg = str(deploy_file(tmp_path, ROBOT_DEPLOY))
    out_dir = tmp_path / "units"
    out_dir.mkdir()
    argv = ["service", "install", "--config", cfg, "--unit-dir", str(out_dir), "--exe", str(EXE)]
    assert main(argv + ["--dry-run"]) == 0
    assert "Type=notify" in capsys.readouterr().out and list(out_dir.iterdir()) == []
    assert main(argv) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["vertebra-g1_robot.service", "vertebra-guard-g1_robot.service"]
    assert "systemctl daemon-reload" in capsys.readouterr().out


def test_print_and_bad_configs(tmp_path, capsys):
    cfg = str(deploy_file(tmp_path, ROBOT_DEPLOY))
    assert main(["service", "print", "--config", cfg, "--exe", str(EXE), "--unit", "runtime"]) == 0
    out = capsys.readouterr().out
    assert "ExecStart=" in out and " run --config " in out and "guard --config" not in out
    assert main(["service", "print", "--config", "no_such_deploy", "--exe", str(EXE)]) == 2
    assert "valid: one of:" in capsys.readouterr().err


@needs_analyze
def test_verify_command_exit_code(tmp_path, capsys):
    assert main(["service", "verify", "--config", str(deploy_file(tmp_path, ROBOT_DEPLOY)), "--exe", str(EXE)]) == 0
    assert capsys.readouterr().out.startswith("ok: systemd-analyze verify")
