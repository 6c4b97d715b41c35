"""The service's policy runner (runtime/service/policy_host.py) with a policy that says mid-episode
that it cannot comply: the chunk is never pushed, the runner stops and reports once. (The request
path, a refusal at episode_start, runs against the real service in test_service.py.)"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from vertebra.policies.package import CANNOT_COMPLY_REPLIES
from vertebra.runtime.service.policy_host import PolicyHost


class FakeClient:
    def __init__(self, replies):
        self.replies = list(replies)
        self.calls = 0

    def infer(self, obs, timeout_s):
        self.calls += 1
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


class FakeScheduler:
    def __init__(self):
        self.pushed = []

    def push(self, start, dt, actions):
        self.pushed.append(np.array(actions))


def host(replies):
    h = PolicyHost.__new__(PolicyHost)  # the runner's part only: no server, no deploy config
    h._lock, h._stop = threading.RLock(), threading.Event()
    h.client = FakeClient(replies)
    h.spec = SimpleNamespace(name="doubtful", chunk_length=2, rate_hz=50.0, targets=["a", "b"],
                             action_space="joint_targets", command_names=[], instruction_input="tokens")
    h.rt = SimpleNamespace(loop=SimpleNamespace(snapshot=lambda: {"time_s": 1.0, "state": {"q": [0.0], "dq": [0.0]}}))
    h.sched = FakeScheduler()
    h.command, h.instruction = np.zeros(0, np.float32), "touch the red cube"
    h.steps = h.outages = h.restarts = 0
    h.latency_us, h.last_error = [], ""
    h.cannot_comply, h.on_cannot_comply, h.doubtful = None, None, 0
    h.running = False
    return h


CHUNK = np.zeros((2, 2))


@pytest.mark.parametrize("flag", [True, "yes", 1])
def test_a_chunk_the_policy_cannot_comply_with_is_never_pushed(flag):
    h = host([{"actions": CHUNK, "feasible": 0.1, "cannot_comply": flag}])
    for _ in range(CANNOT_COMPLY_REPLIES - 1):  # held, not yet "cannot comply"
        assert h.step() is False and h.cannot_comply is None
    assert h.step() is False
    assert h.sched.pushed == [] and h.outages == 0
    assert h.cannot_comply["instruction"] == "touch the red cube" and h.cannot_comply["policy"] == "doubtful"


def test_one_doubtful_reply_pauses_and_the_next_feasible_one_goes_on():
    ok = {"actions": CHUNK, "feasible": 0.9, "cannot_comply": False}
    no = {"actions": CHUNK + 1.0, "feasible": 0.2, "cannot_comply": True}
    h = host([ok, no, no, ok, no, no, ok])
    assert [h.step() for _ in range(7)] == [True, False, False, True, False, False, True]
    assert h.cannot_comply is None and len(h.sched.pushed) == 3 and all(np.all(p == 0.0) for p in h.sched.pushed)


def test_a_feasible_chunk_is_pushed():
    h = host([{"actions": CHUNK, "feasible": 0.9, "cannot_comply": False}])
    assert h.step() is True and len(h.sched.pushed) == 1 and h.cannot_comply is None


def test_the_runner_stops_and_reports_once_when_the_policy_changes_its_mind():
    ok = {"actions": CHUNK, "feasible": 0.9, "cannot_comply": False}
    no = {"actions": CHUNK + 1.0, "feasible": 0.2, "cannot_comply": True}
    h = host([ok, ok, no])
    reported = []
    h.on_cannot_comply = reported.append
    h.running = True
    t = threading.Thread(target=h._run, daemon=True)
    t.start()
    end = time.monotonic() + 5.0
    while not reported and time.monotonic() < end:
        time.sleep(0.01)
    time.sleep(0.1)  # a runner that kept going would push or report again
    h._stop.set()
    t.join(2.0)
    assert len(reported) == 1 and reported[0]["feasible"] == 0.2
    assert not h.running and len(h.sched.pushed) == 2  # the two feasible chunks, never the third
    assert all(np.all(p == 0.0) for p in h.sched.pushed)
