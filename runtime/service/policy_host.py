"""The service's policies: the policy server (a local `vertebra serve` the service starts and
supervises; a remote server is not supported by the service yet), the runner that turns observations into action chunks for the
C++ chunk scheduler, and swaps.

The runner is a Python thread at the policy's rate, never on the tick: each step it reads the loop's
snapshot, sends the observation, and pushes the reply's chunk, time-stamped from the observation's
time, into the scheduler, which interpolates it at tick rate (and blends one chunk into the next).
While a step is late the scheduler keeps playing the previous chunk; when chunks run out the
supervisor's starvation monitor holds, then stops, the robot.

Swaps keep the scheduler (its action layout is fixed when the loop is configured): the new package
is checked against the robot and against that layout, loaded by the server next to the old one,
then made active; the runner's next chunk comes from it and is blended in at a chunk boundary, so
no tick goes without a target. A package with another layout is refused (restart the service).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vertebra.runtime.errors import VertebraError


class PolicyRefused(VertebraError):
    """A policy that cannot run here (wrong robot, layout, inputs this runtime cannot give)."""


def _layout(spec: Any) -> tuple[str, tuple[str, ...]]:
    return spec.action_space, tuple(spec.targets)


class RemoteSpec:
    """What a remote server's metadata (its hello/swap reply) says of the policy it runs: the fields
    of a PolicySpec the service uses (the package itself is the server's, checked there)."""

    def __init__(self, meta: dict[str, Any]):
        self.name, self.version = str(meta.get("name", "?")), str(meta.get("version", "?"))
        self.robots = list(meta.get("robots") or [])
        self.action_space = str(meta.get("action_space", "none"))
        self.targets = [str(t) for t in meta.get("targets") or []]
        self.chunk_length = int(meta.get("chunk_length", 1))
        self.rate_hz = float(meta.get("rate_hz", 0.0))
        self.command_names = [str(c) for c in meta.get("command") or []]
        self.instruction_input = "instruction" if meta.get("instruction") else None
        self.cameras = list(meta.get("cameras") or [])
        self.state_fields = [(f.get("kind"), list(f.get("joints") or [])) for f in meta.get("state_fields") or []]
        self.model_sha256 = str(meta.get("sha256", "remote"))


class PolicyHost:
    def __init__(self, deploy: Any, robot: Any, event: Callable[..., None], say: Callable[[str], None]):
        from vertebra.policies.server_config import ServerConfig

        self.deploy, self.robot, self.event, self.say = deploy, robot, event, say
        self.remote = deploy.policy_remote
        self.specs: dict[str, Any] = {}
        self.server: Any = None
        self.client: Any = None
        self.server_state = "stopped"
        if self.remote is not None:
            self.server_cfg = None
            self.spec = self._connect_remote()
            self.active = self.spec.name
            self.layout: Any = None  # the chunk scheduler is not configured yet: any layout may start
            self.command = np.zeros(len(self.spec.command_names), np.float32)
            self._lock = threading.RLock()
            if deploy.active_policy is not None and deploy.active_policy != self.active:
                try:
                    self.commit(deploy.active_policy, self.prepare(deploy.active_policy))
                except BaseException:
                    self.client.close()
                    raise
        elif deploy.policy_path is None:
            raise PolicyRefused("the deploy config names no policy server (policy: or policy_remote:)")
        else:
            self.server_cfg = ServerConfig.load(deploy.policy_path)
            self.active = deploy.active_policy or self.server_cfg.default
            self.spec = self.check(self.active)
        self.layout = _layout(self.spec)
        self.sched: Any = None
        self.running = False         # the runner pushes chunks
        self.command = np.zeros(len(self.spec.command_names), np.float32)
        self.instruction = ""
        self.steps = self.outages = self.restarts = 0
        self.latency_us: list[float] = []
        self.last_error = ""
        # The policy said the instruction cannot be done here (its outputs.feasibility): what and
        # when; the chunk is not acted on and the runner stops (the service holds the robot).
        self.cannot_comply: dict[str, Any] | None = None
        self.doubtful = 0  # replies in a row below the policy's feasibility threshold
        self.on_cannot_comply: Callable[[dict[str, Any]], None] | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- a remote server ----------------------------------------------------------------------
    def _connect_remote(self) -> Any:
        """Connect to the remote server and check what it runs (start-up: unreachable is an error)."""
        from vertebra.policies.client import PolicyClient

        r = self.remote
        keys: dict[str, Any] = {}
        if r.endpoint.startswith("tcp://"):
            import zmq.auth

            spub, _ = zmq.auth.load_certificate(r.server_public_key)
            cpub, csec = zmq.auth.load_certificate(r.client_secret_key)
            if not csec:
                raise PolicyRefused(f"policy_remote.client_secret_key {r.client_secret_key} holds no secret key")
            keys = {"server_public_key": spub, "public_key": cpub, "secret_key": csec}
        self._keys = keys
        client = PolicyClient(r.endpoint, **keys)
        try:
            hello = client.hello(list(self.robot.joint_names), timeout_s=r.timeout_s)
        except TimeoutError:
            client.close()
            raise PolicyRefused(f"the policy server at {r.endpoint} did not answer within {r.timeout_s:g} s") from None
        self.client = client
        self.server_state = "remote"
        try:
            listing = client.call({"type": "list"}, timeout_s=r.timeout_s)
            self.remote_policies = list(listing.get("policies") or [])
            self.remote_default = str(hello["policy"].get("name", ""))
            return self.check_remote(hello["policy"])
        except BaseException:
            self.client = None
            client.close()
            raise

    def check_remote(self, meta: dict[str, Any]) -> RemoteSpec:
        """What the remote server runs, against this robot (PolicyRefused says what disagrees)."""
        from vertebra.policies.actions import ACTION_SPACE_CONTROLLER, task_target_names

        spec = RemoteSpec(meta)
        problems = []
        if self.robot.name not in spec.robots:
            problems.append(f"robots: the server's policy is for {', '.join(spec.robots) or 'no robot'}, not "
                            f"{self.robot.name}")
        if spec.action_space == "joint_targets" and spec.targets != list(self.robot.joint_names):
            problems.append(f"outputs.targets: not {self.robot.name}'s joints in motor order")
        elif spec.action_space in ACTION_SPACE_CONTROLLER:
            bad = [t for t in spec.targets if t not in task_target_names(self.robot, spec.action_space)]
            if bad:
                problems.append(f"outputs.targets: {', '.join(bad)} are not {spec.action_space} targets of "
                                f"{self.robot.name}")
            need = ACTION_SPACE_CONTROLLER[spec.action_space]
            if self.deploy.controller != need:
                problems.append(f"outputs.action_space: {spec.action_space} needs controller: {need}")
        elif spec.action_space != "joint_targets":
            problems.append(f"outputs.action_space: {spec.action_space} cannot drive a robot")
        if spec.cameras:
            problems.append("inputs.cameras: this runtime has no camera source")
        if not spec.rate_hz > 0:
            problems.append(f"outputs.rate_hz: {spec.rate_hz}")
        if problems:
            raise PolicyRefused(f"the remote policy '{spec.name}' does not fit {self.robot.name}: " + "; ".join(problems))
        self.specs[spec.name] = spec
        return spec

    # -- checks -------------------------------------------------------------------------------
    def check(self, name: str) -> Any:
        """The package `name` of the server config, checked against the robot (PolicyRefused says why)."""
        from vertebra.policies.actions import ACTION_SPACE_CONTROLLER, wbc_target_names
        from vertebra.policies.package import PolicyPackage, check_against_robot

        if name not in self.server_cfg.policies:
            raise PolicyRefused(f"no policy '{name}' in {self.deploy.policy_path}; policies: "
                                + ", ".join(self.server_cfg.policies))
        entry = self.server_cfg.policies[name]
        if entry["kind"] != "package":
            raise PolicyRefused(f"policy '{name}' is a {entry['kind']} entry, not a package: it cannot drive a robot")
        spec = PolicyPackage.load(entry["path"]).spec
        problems = check_against_robot(spec, self.robot, wbc_targets=wbc_target_names(self.robot))
        if spec.cameras:
            problems.append(f"inputs.cameras: the package needs camera(s) {', '.join(c.name for c in spec.cameras)}; "
                            "this runtime has no camera source")
        need = ACTION_SPACE_CONTROLLER.get(spec.action_space)
        if need is not None and self.deploy.controller != need:
            problems.append(f"outputs.action_space: {spec.action_space} needs controller: {need} (the deploy config "
                            f"runs {self.deploy.controller})")
        if problems:
            raise PolicyRefused(f"policy '{name}' does not fit {self.robot.name}: " + "; ".join(problems))
        self.specs[name] = spec
        return spec

    # -- configuration (before the loop ticks) ------------------------------------------------
    def configure(self, rt: Any) -> None:
        from vertebra import _rt

        spec = self.spec
        self.sched = _rt.ChunkScheduler(len(spec.targets), mode="keep_prefix", prefix_s=0.0, blend_s=0.04)
        if spec.action_space == "joint_targets":
            _rt.set_chunk_scheduler(rt.loop, self.sched)
        else:
            _rt.set_chunk_scheduler(rt.loop, self.sched, rt.active_mode, list(spec.targets))
        self.rt = rt

    # -- the server ---------------------------------------------------------------------------
    def start(self) -> None:
        if self.remote is None:
            self._start_server()
        else:
            self.event("policy_server", state="remote", endpoint=self.remote.endpoint, policy=self.active)
        for target, name in ((self._supervise, "vertebra-policy-supervisor"), (self._run, "vertebra-policy-runner")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def _server_config(self) -> dict[str, Any]:
        cfg = self.server_cfg.to_dict()
        cfg["default"] = self.active
        return cfg

    def _start_server(self) -> None:
        from vertebra.policies.evaluate import ServerProcess

        self.server_state = "starting"
        server = ServerProcess(config=self._server_config(), prefix=f"run-{os.getpid()}-")
        try:
            client = server.client(list(self.robot.joint_names), timeout_s=60.0, shared_memory=True)
        except BaseException:
            server.close()
            self.server_state = "failed"
            raise
        with self._lock:
            self.server, self.client = server, client
        self.server_state = "running"
        self.event("policy_server", state="running", policy=self.active, pid=server.proc.pid)

    def _supervise(self) -> None:
        backoff = 1.0
        while not self._stop.wait(0.2):
            server = self.server
            if self.remote is not None or server is None or server.proc.poll() is None:
                continue  # a remote server is its own unit's to restart (the client reconnects)
            code = server.proc.returncode
            self.server_state = "restarting"
            self.event("policy_server", state="exited", code=code, restart_in_s=backoff)
            self.say(f"the policy server exited with code {code}; restarting it in {backoff:g} s")
            with self._lock:
                self.client = None
            try:
                server.close()
            except Exception:  # noqa: BLE001
                pass
            if self._stop.wait(backoff):
                return
            try:
                self._start_server()
                self.restarts += 1
                backoff = 1.0
            except Exception as e:  # noqa: BLE001 - keep trying, slower
                self.last_error = f"restart failed: {e}"
                self.event("policy_server", state="restart_failed", error=str(e))
                backoff = min(30.0, backoff * 2)

    # -- the runner ---------------------------------------------------------------------------
    def observation(self, snap: dict[str, Any]) -> dict[str, Any]:
        st = snap["state"]
        obs: dict[str, Any] = {"state": {"q": np.asarray(st["q"], np.float32), "dq": np.asarray(st["dq"], np.float32)}}
        if self.spec.command_names:
            obs["command"] = self.command
        if self.spec.instruction_input:
            obs["instruction"] = self.instruction
        return obs

    def step(self) -> bool:
        """One policy step now: observation -> chunk -> scheduler. False when no chunk came (counted)."""
        from vertebra.policies.client import PolicyError
        from vertebra.policies.package import CANNOT_COMPLY_REPLIES

        with self._lock:  # one thread on the server's connection; the spec the chunk was made by
            client, spec = self.client, self.spec
            if client is None:
                return False
            snap = self.rt.loop.snapshot()
            t_obs = int(round(float(snap["time_s"]) * 1e9))
            dt_ns = int(round(1e9 / spec.rate_hz))
            t0 = time.perf_counter_ns()
            try:
                reply = client.infer(self.observation(snap), timeout_s=max(0.05, spec.chunk_length / spec.rate_hz / 2))
                actions = np.asarray(reply["actions"], np.float64)
            except (TimeoutError, PolicyError, RuntimeError, OSError, KeyError, TypeError, ValueError) as e:
                self.outages += 1
                self.last_error = str(e)
                return False
            flag = reply.get("cannot_comply")
            if flag is not None and flag is not False:
                # Not acted on, whatever the chunk says (a malformed flag counts as "cannot"); after
                # CANNOT_COMPLY_REPLIES in a row the policy cannot comply.
                self.doubtful += 1
                if self.doubtful >= CANNOT_COMPLY_REPLIES:
                    self.cannot_comply = {"instruction": self.instruction, "feasible": reply.get("feasible"),
                                          "policy": spec.name, "at": time.time()}
                return False
            self.doubtful = 0
        if actions.ndim != 2 or actions.shape[1] != len(spec.targets) or actions.shape[0] < 1 \
                or not np.all(np.isfinite(actions)):
            self.outages += 1
            self.last_error = (f"a chunk of shape {list(actions.shape)} (finite: {bool(np.all(np.isfinite(actions)))}) "
                               f"from {spec.name}, which declares [chunk, {len(spec.targets)}]: dropped")
            return False
        if spec.action_space == "base_velocity":
            why = self._beyond_bounds(spec, actions)
            if why:  # fail closed: the chunk is not pushed (the loop would stop the walk on it anyway)
                self.outages += 1
                self.last_error = f"a chunk from {spec.name} commands {why} (safety config base_velocity): dropped"
                return False
        self.latency_us.append((time.perf_counter_ns() - t0) / 1e3)
        del self.latency_us[:-500]
        start = t_obs + dt_ns if spec.action_space == "joint_targets" else t_obs
        try:
            self.sched.push(start, dt_ns, actions)
        except (ValueError, RuntimeError) as e:
            self.outages += 1
            self.last_error = f"the chunk scheduler refused a chunk: {e}"
            return False
        self.steps += 1
        return True

    def _beyond_bounds(self, spec: Any, actions: np.ndarray) -> str:
        """'' when every row's base velocity is within the safety config's bounds, else the first that is not."""
        from vertebra.policies.actions import BASE_VELOCITY_TARGETS

        bounds = getattr(getattr(self.rt, "safety", None), "base_velocity", None)
        if bounds is None:
            return "a base velocity with no bounds declared"
        cols = [list(spec.targets).index(t) for t in BASE_VELOCITY_TARGETS]
        for row in actions:
            why = bounds.refusal(*(float(row[c]) for c in cols))
            if why:
                return why
        return ""

    def _run(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            period = 1.0 / self.spec.rate_hz
            if not self.running:
                self._stop.wait(period)
                next_t = time.monotonic()
                continue
            try:
                if not self.step() and self.cannot_comply is not None and self.running:
                    self.running = False  # nothing more is pushed; the service holds the robot
                    if self.on_cannot_comply is not None:
                        self.on_cannot_comply(self.cannot_comply)
            except Exception as e:  # noqa: BLE001 - the runner outlives any one step (starvation holds)
                self.outages += 1
                self.last_error = f"runner: {type(e).__name__}: {e}"
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_t = time.monotonic()

    # -- swaps --------------------------------------------------------------------------------
    def _side_client(self) -> Any:
        """A second connection to the server for slow requests (loads): the runner keeps its own."""
        from vertebra.policies.client import PolicyClient

        if self.remote is not None and self.remote.endpoint.startswith("tcp://"):
            return PolicyClient(self.remote.endpoint, **self._keys)
        endpoint = self.remote.endpoint if self.remote is not None else self.server.endpoint
        return PolicyClient(endpoint)

    def prepare(self, name: str) -> Any:
        """Check `name` and have the server build it next to the running one (slow: no lock held; the
        runner keeps running). Returns what commit() needs."""
        if name == self.active:
            return None
        if self.remote is None:
            spec = self.check(name)
            if _layout(spec) != self.layout:
                raise PolicyRefused(f"policy '{name}' drives {spec.action_space} {list(spec.targets)[:4]}...; this "
                                    f"runtime's chunk scheduler was configured for {self.layout[0]} of "
                                    f"'{self.spec.name}': restart the service to run it")
            if self.client is None or self.server is None:
                raise PolicyRefused("the policy server is not running (restarting); try again")
        side = self._side_client()
        try:
            side.call({"type": "load", "name": name}, timeout_s=60.0)
        finally:
            side.close()
        return self.specs.get(name)

    def commit(self, name: str, spec: Any) -> dict[str, Any]:
        """Swap to the loaded `name` (under the runner's lock: ms). A remote server's policy is checked
        from its swap reply; a misfit is swapped back and refused. Any other failure leaves the server's
        active policy unknown: `server_state` says so and the caller stops the policy."""
        old = self.active
        with self._lock:
            client = self.client
            if client is None:
                raise PolicyRefused("the policy server is not running (restarting); try again")
            try:
                reply = client.call({"type": "swap", "name": name}, timeout_s=10.0)
                if self.remote is not None:
                    try:
                        spec = self.check_remote(reply["policy"])
                        if self.layout is not None and _layout(spec) != self.layout:
                            raise PolicyRefused(f"policy '{name}' drives {spec.action_space}; this runtime's chunk "
                                                f"scheduler was configured for {self.layout[0]}: restart the service "
                                                "to run it")
                    except PolicyRefused:
                        client.call({"type": "swap", "name": old}, timeout_s=10.0)
                        raise
                client.hello(list(self.robot.joint_names))  # the new policy's metadata and mapping
            except PolicyRefused:
                raise
            except Exception as e:  # noqa: BLE001 - a timeout, a dead server: which policy runs is unknown
                self.server_state = "unknown (a swap failed)"
                raise PolicyRefused(f"the swap to '{name}' failed ({e}); the server's active policy is unknown") from None
            self.active, self.spec = name, spec
            if len(spec.command_names) != len(self.command):
                self.command = np.zeros(len(spec.command_names), np.float32)
        return {"policy": name, "changed": True, "from": old, "package_sha256": getattr(spec, "model_sha256", "")}

    def swap(self, name: str) -> dict[str, Any]:
        """prepare() then commit(): the old policy runs until the new one answers."""
        if name == self.active:
            return {"policy": name, "changed": False}
        return self.commit(name, self.prepare(name))

    def set_episode(self, command: Any, instruction: str) -> None:
        """The episode's command and instruction; an instruction the policy's tokenizer refuses (too
        long) is refused here, before anything moves."""
        from vertebra.policies.package import InstructionError

        tok = getattr(self.spec, "tokenizer", None)
        if tok is not None and instruction:
            try:
                tok.encode(instruction)
            except InstructionError as e:
                raise PolicyRefused(str(e)) from None
        with self._lock:
            self.command = np.asarray(command, np.float32)
            self.instruction = instruction
            self.cannot_comply = None
            self.doubtful = 0

    def status(self) -> dict[str, Any]:
        lat = np.asarray(self.latency_us[-200:]) if self.latency_us else None
        return {"name": self.active, "version": self.spec.version, "action_space": self.spec.action_space,
                "rate_hz": self.spec.rate_hz, "running": self.running, "server": self.server_state,
                "steps": self.steps, "outages": self.outages, "restarts": self.restarts,
                "latency_us": None if lat is None else {"p50": round(float(np.percentile(lat, 50)), 1),
                                                       "max": round(float(lat.max()), 1)},
                "last_error": self.last_error, "cannot_comply": self.cannot_comply,
                "available": self.available()}

    def available(self) -> list[str]:
        """The policies the server may run (a remote server's, as it said at connection)."""
        return list(self.server_cfg.policies) if self.server_cfg is not None else list(self.remote_policies)

    def default(self) -> str:
        return self.server_cfg.default if self.server_cfg is not None else self.remote_default

    def close(self) -> None:
        self.running = False
        self._stop.set()
        for t in self._threads:
            t.join(3.0)
        if self.server is not None:
            self.server.close()
            self.server = None
        elif self.client is not None:
            self.client.close()
            self.client = None
        self.server_state = "stopped"
