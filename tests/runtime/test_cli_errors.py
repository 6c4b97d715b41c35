"""Bad arguments and start-up failures of `vertebra sim`, `vertebra serve` and `vertebra events` end
with one line on stderr naming what was wrong and what is valid, exit code 2, and no traceback."""

import os
import socket
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "vertebra.runtime.cli"]
NOOP = "policies: {noop: {kind: noop, chunk_length: 5, action_dim: 3, rate_hz: 50}}\n"


def vertebra(args, tmp_path, timeout=120):
    env = {**os.environ, "VERTEBRA_LOG_DIR": str(tmp_path / "logs"), "XDG_RUNTIME_DIR": str(tmp_path)}
    return subprocess.run(CLI + args, capture_output=True, text=True, timeout=timeout, env=env)


def assert_one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stdout[-1000:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    assert "valid" in lines[0], lines[0]


SIM = ["sim", "--robot", "go2", "--lockstep", "--duration", "0.2"]


@pytest.mark.parametrize("flag,value,needles", [
    ("--rate", "-500", ["--rate", "-500", ">= 50.0 and <= 2000.0"]),
    ("--rate", "nan", ["--rate", "nan", "finite"]),
    ("--rate", "1e6", ["--rate", "1000000", "<= 2000.0"]),
    ("--rate", "0", ["--rate", ">= 50.0"]),  # was: silently the robot's 500 Hz
    ("--rate", "333", ["--rate", "333", "2000 Hz", "1000, 500, 400"]),  # not a divisor of the simulator's rate
    ("--duration", "nan", ["--duration", "nan", "finite number > 0"]),
    ("--duration", "inf", ["--duration", "inf", "finite number > 0"]),
    ("--push-n", "nan", ["--push-n", "nan"]),
])
def test_sim_refuses_bad_numbers(tmp_path, flag, value, needles):
    args = [a for a in SIM]
    if flag == "--duration":
        args[args.index("--duration") + 1] = value
    else:
        args += [flag, value]
    assert_one_line_error(vertebra(args, tmp_path), *needles)


def test_sim_refuses_a_bad_rate_in_a_deploy_config(tmp_path):
    deploy = tmp_path / "deploy.yaml"
    deploy.write_text("robot: go2\ndriver: {type: mujoco}\nloop: {rate_hz: 300, lockstep: true}\n")
    assert_one_line_error(vertebra(["sim", "--config", str(deploy), "--duration", "0.2"], tmp_path),
                          "loop.rate_hz", "300", "integer multiple")
    assert_one_line_error(vertebra(["sim", "--config", str(deploy), "--duration", "0.2", "--rate", "7"], tmp_path),
                          "--rate", ">= 50.0")


@pytest.mark.parametrize("where", ["proc", "directory", "unwritable"])
def test_sim_refuses_an_event_log_it_cannot_write(tmp_path, where):
    if where == "proc":
        log, needles = "/proc/x/y", ["--event-log /proc/x/y", "cannot create its folder /proc/x"]
    elif where == "directory":
        log, needles = str(tmp_path), ["--event-log", "is a directory"]
    else:
        ro = tmp_path / "ro.jsonl"
        ro.write_text("")
        ro.chmod(0o444)
        if os.access(ro, os.W_OK):  # root writes anyway: a file below a regular file cannot be
            log, needles = str(ro / "events.jsonl"), ["--event-log", "cannot create its folder"]
        else:
            log, needles = str(ro), ["--event-log", "cannot open it for appending"]
    assert_one_line_error(vertebra(SIM + ["--event-log", log], tmp_path), *needles)


def test_the_existing_duration_check_still_returns_2_in_process(tmp_path, monkeypatch):
    from vertebra.runtime.cli import main

    monkeypatch.setenv("VERTEBRA_LOG_DIR", str(tmp_path))
    assert main(["sim", "--robot", "go2", "--duration", "-1"]) == 2
    assert main(["sim", "--robot", "go2", "--duration", "1", "--rate", "0"]) == 2


# -- serve ---------------------------------------------------------------------------------------
def _serve(tmp_path, config_text, *extra):
    cfg = tmp_path / "server.yaml"
    cfg.write_text(config_text)
    return vertebra(["serve", "--config", str(cfg), "--quiet", *extra], tmp_path, timeout=60)


def _sock(tmp_path):
    return f"ipc://{tmp_path}/policy.sock"


def test_serve_bad_yaml(tmp_path):
    r = _serve(tmp_path, f"bind: {_sock(tmp_path)}\npolicies: {{noop: {{kind: noop\n")
    assert_one_line_error(r, "server.yaml", "YAML")


@pytest.mark.parametrize("threads,needles", [
    ("{intra_op: 0}", ["threads.intra_op", ">= 1"]),
    ("{intra_op: many}", ["threads.intra_op", "'many'"]),
    ("{intra_op: 100000}", ["threads.intra_op", "<= 256"]),
    ("8", ["threads", "a mapping"]),
])
def test_serve_bad_thread_count(tmp_path, threads, needles):
    assert_one_line_error(_serve(tmp_path, f"bind: {_sock(tmp_path)}\n{NOOP}threads: {threads}\n"), *needles)


def _curve(tmp_path, secret_name):
    import zmq.auth

    keys = tmp_path / "keys"
    (keys / "clients").mkdir(parents=True)
    zmq.auth.create_certificates(str(keys), "server")
    zmq.auth.create_certificates(str(keys / "clients"), "client")
    return (f"curve: {{enabled: true, server_secret_key: {keys / secret_name}, "
            f"allowed_clients: {keys / 'clients'}}}\n")


def test_serve_port_in_use(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = _serve(tmp_path, f"bind: tcp://127.0.0.1:{port}\n{NOOP}{_curve(tmp_path, 'server.key_secret')}")
    assert_one_line_error(r, f"tcp://127.0.0.1:{port}", "in use", "free")


def test_serve_missing_ipc_folder(tmp_path):
    r = _serve(tmp_path, f"bind: {_sock(tmp_path)}\n{NOOP}", "--bind", "ipc:///nonexistent/dir/x.sock")
    assert_one_line_error(r, "/nonexistent/dir", "existing folder")


def test_serve_public_key_given_as_the_secret_key(tmp_path):
    r = _serve(tmp_path, f"bind: tcp://127.0.0.1:0\n{NOOP}{_curve(tmp_path, 'server.key')}")
    assert_one_line_error(r, "curve.server_secret_key", "server.key", "public key")


def test_serve_bad_bind_argument(tmp_path):
    assert_one_line_error(_serve(tmp_path, f"bind: {_sock(tmp_path)}\n{NOOP}", "--bind", "nonsense"), "nonsense")


# -- events --------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["0", "-3", "five"])
def test_events_tail_must_be_a_positive_integer(tmp_path, value):
    log = tmp_path / "events.jsonl"
    log.write_text("")
    r = vertebra(["events", "--log", str(log), "--tail", value], tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]  # argparse prints its usage above
    assert "--tail" in last and value in last and "an integer >= 1" in last


@pytest.mark.parametrize("path,what", [("/dev/zero", "a character device"), ("DIR", "a directory")])
def test_events_refuses_what_is_not_a_regular_file(tmp_path, path, what):
    path = str(tmp_path) if path == "DIR" else path
    assert_one_line_error(vertebra(["events", "--log", path], tmp_path, timeout=30), path, what)
