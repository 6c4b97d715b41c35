"""The service's policy requests: the policy list, swaps and `reload`, episodes and interventions (a
part of :class:`vertebra.runtime.service.service.Service`; the policy server and its runner are
vertebra.runtime.service.policy_host)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from vertebra import _rt
from vertebra.runtime.errors import VertebraError
from vertebra.runtime.service.protocol import ProtocolError, refused


class PolicyRequests:
    """Policy, episode and intervention requests for the Service (its attributes and helpers:
    rt, policy, episode, _lock, _request, _feet_loaded, _activate_controller, event, ...)."""

    rt: Any
    policy: Any
    deploy: Any
    episode: dict[str, Any] | None

    def _need_policy(self) -> Any:
        if self.policy is None:
            raise refused("this deploy config names no policy")
        return self.policy

    def _req_policy_list(self, msg: dict[str, Any], client: str) -> dict[str, Any]:
        if self.policy is None:
            return {"active": None, "policies": []}
        return {"active": self.policy.active, "policies": self.policy.available()}

    def _req_policy_swap(self, msg: dict[str, Any], client: str) -> dict[str, Any]:
        return self._swap(msg["name"], client)

    def _swap(self, name: str, client: str) -> dict[str, Any]:
        from vertebra.runtime.service.policy_host import PolicyRefused

        pol = self._need_policy()
        if name == pol.active:
            return {"policy": name, "changed": False}
        try:
            loaded = pol.prepare(name)  # slow, no lock: the running policy keeps running
        except PolicyRefused as e:
            raise refused(str(e)) from None
        except Exception as e:  # noqa: BLE001 - a load that failed on the server: nothing changed
            raise refused(f"the server could not load '{name}': {e}; the running policy stays") from None
        with self._lock:
            try:
                out = pol.commit(name, loaded)
            except PolicyRefused as e:
                if pol.server_state.startswith("unknown"):  # which policy runs is unknown: stop it
                    self._end_policy("aborted", str(e))
                    self._try(lambda: self._request(_rt.Mode.HOLD))
                raise refused(str(e)) from None
            self.event("policy_swapped", by=client, **{"from": out["from"], "to": name},
                       during_episode=self.episode is not None, package_sha256=out.get("package_sha256"))
        return out

    def _req_reload(self, msg: dict[str, Any], client: str) -> dict[str, Any]:
        """Re-read the deploy file: a changed active_policy is swapped in; any other change is named
        (it needs a restart)."""
        from vertebra.runtime.deploy import DeployConfig
        from vertebra.runtime.errors import ConfigError

        try:
            new = DeployConfig.load(self.deploy.file)
        except (ConfigError, VertebraError) as e:
            raise refused(f"the deploy config does not load: {e}") from None
        old_d, new_d = self.deploy.to_dict(), new.to_dict()
        changed = sorted(k for k in set(old_d) | set(new_d) if old_d.get(k) != new_d.get(k) and k != "active_policy")
        out: dict[str, Any] = {"restart_needed_for": changed}
        # Only an edit of the file swaps: a reload of an unchanged file never undoes a manual swap.
        if self.policy is not None and new.active_policy != self._file_active_policy:
            want = new.active_policy or self.policy.default()
            out.update(self._swap(want, client))
        self._file_active_policy = new.active_policy
        self.event("reload", by=client, restart_needed_for=changed, policy=self.policy.active if self.policy else None)
        return out

    def _req_episode_start(self, msg: dict[str, Any], client: str) -> dict[str, Any]:
        with self._lock:
            return self._episode_start(msg, client)

    def _episode_start(self, msg: dict[str, Any], client: str) -> dict[str, Any]:
        pol = self._need_policy()
        if self.episode is not None:
            raise ProtocolError("busy", f"episode {self.episode['id']} runs; stop it first")
        if "policy" in msg and msg["policy"] != pol.active:
            raise refused(f"the running policy is {pol.active}; swap to {msg['policy']} first (policy_swap, or "
                           "vertebra policy swap): a load takes a while, an episode start does not wait for one")
        s = self.rt.loop.snapshot()
        if s["safety_mode"] not in ("HOLD", "ACTIVE"):
            raise refused(f"an episode starts from a standing robot (HOLD or ACTIVE); it is {s['safety_mode']}")
        cmd = msg.get("command") or []
        if len(cmd) not in (0, len(pol.spec.command_names)):
            raise ProtocolError("schema", f"'command': {len(pol.spec.command_names)} values "
                                          f"({', '.join(pol.spec.command_names)}) for {pol.active}")
        if pol.spec.action_space != "joint_targets":
            self._feet_loaded(s)  # the policy drives the whole-body controller
        from vertebra.runtime.service.policy_host import PolicyRefused

        try:
            pol.set_episode(cmd or np.zeros(len(pol.spec.command_names)), msg["instruction"])
        except PolicyRefused as e:
            raise refused(str(e)) from None
        from vertebra.policies.package import CANNOT_COMPLY_REPLIES

        first = False
        for _ in range(CANNOT_COMPLY_REPLIES):  # a doubtful reply is asked again, up to the count
            first = pol.step()
            if first or pol.cannot_comply is not None or not pol.doubtful:
                break
        if not first:
            if pol.cannot_comply is not None:  # the policy says it cannot do this here: nothing moves
                self.event("cannot_comply", instruction=msg["instruction"], policy=pol.active, by=client,
                           feasible=pol.cannot_comply.get("feasible"), during_episode=False)
                raise ProtocolError("cannot_comply", f"policy {pol.active} cannot comply with {msg['instruction']!r} "
                                                     "here (it says the task cannot be done); the robot holds")
            raise refused(f"the policy server gave no first chunk: {pol.last_error or pol.server_state}")
        self._enter_policy_mode(s["safety_mode"])
        pol.running = True
        self.episodes += 1
        self.episode = {"id": self.episodes, "instruction": msg["instruction"], "policy": pol.active,
                        "command": [float(v) for v in pol.command], "by": client, "started": time.time(),
                        "interventions": [], "faults": []}
        self.event("episode_start", episode=self.episode["id"], instruction=msg["instruction"], policy=pol.active,
                   by=client)
        if self.rt.recorder is not None:  # the recording's episode (tools/data: lists and exports it)
            self.rt.recorder.episode_start(msg["instruction"], policy=pol.active,
                                           task=str(msg.get("task") or msg["instruction"]))
        return {"episode": self.episode["id"]}

    def _enter_policy_mode(self, mode_now: str) -> None:
        """HOLD -> the mode the running policy's chunks drive (joint PD streaming, or the controller)."""
        if mode_now == "ACTIVE":
            self._request(_rt.Mode.HOLD)
        if self.policy.spec.action_space == "joint_targets":
            self._request(_rt.Mode.JOINT_PD, stream=True)
        else:
            if self.rt._controller is not None:
                self.rt._controller.before_activate(self.rt.handle)
            self._request(self.rt.active_mode)

    def _end_policy(self, outcome: str, reason: str) -> dict[str, Any] | None:
        """Stop the runner and end the episode, if one runs (the robot stays in its mode)."""
        if self.policy is not None:
            self.policy.running = False
        ep, self.episode = self.episode, None
        if ep is None:
            return None
        if self.intervening:
            ep["interventions"][-1]["end"] = time.time()
            self.intervening = False
        rec = self.rt.recorder
        if rec is not None and rec.episode_open:
            rec.episode_end(outcome, reason)  # closes an open intervention first
        ep.update(outcome=outcome, reason=reason, ended=time.time(),
                  faults=list(self.rt.loop.snapshot()["faults"]))
        self.event("episode_end", episode=ep["id"], outcome=outcome, reason=reason, policy=ep["policy"],
                   interventions=len(ep["interventions"]), faults=ep["faults"])
        self.last_episode = ep
        return ep

    def _cannot_comply(self, what: dict[str, Any]) -> None:
        """The runner's policy said mid-episode that it cannot comply: the episode ends so, the robot
        holds (called from the runner thread, which has stopped pushing)."""
        with self._lock:
            self.event("cannot_comply", instruction=what.get("instruction"), policy=what.get("policy"),
                       feasible=what.get("feasible"), during_episode=self.episode is not None)
            if self.episode is not None and not self.intervening:
                self._end_policy("aborted", f"cannot_comply: policy {what.get('policy')} says it cannot do "
                                            f"{what.get('instruction')!r} here")
                self._try(lambda: self._request(_rt.Mode.HOLD))

    def _req_episode_stop(self, msg: dict[str, Any], client: str) -> dict[str, Any]:
        if self.episode is None:
            raise refused("no episode runs")
        ep = self._end_policy(msg.get("outcome", "success"), msg.get("reason", f"stopped by {client}"))
        self._request(_rt.Mode.HOLD)
        return {"episode": ep}

    def _intervention(self, on: bool, client: str, why: str) -> None:
        ep = self.episode
        if ep is None:
            raise refused("no episode runs: an intervention is a take-over of a running policy")
        if on == self.intervening:
            return
        if on:
            self.policy.running = False
            self.intervening = True
            ep["interventions"].append({"start": time.time(), "by": client, "why": why})
            self.event("intervention_start", episode=ep["id"], by=client, why=why)
            if self.rt.recorder is not None:
                self.rt.recorder.intervention_start(client)
            self._activate_controller()
        else:
            ep["interventions"][-1]["end"] = time.time()
            self.intervening = False
            self.event("intervention_end", episode=ep["id"], by=client)
            if self.rt.recorder is not None:
                self.rt.recorder.intervention_end()
            # back to the policy
            s = self.rt.loop.snapshot()
            if self.policy.spec.action_space != "joint_targets":
                self._feet_loaded(s)
            if not self.policy.step():
                raise refused(f"the policy gave no chunk to resume with: {self.policy.last_error}")
            self._enter_policy_mode(s["safety_mode"])
            self.policy.running = True

    def _req_intervention(self, msg: dict[str, Any], client: str) -> dict[str, Any]:
        with self._lock:
            self._intervention(bool(msg["on"]), client, "marked by the operator")
        return {"intervention": self.intervening}
