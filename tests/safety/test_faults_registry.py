"""Fault scenarios are registered by decorator: one registered outside Vertebra runs like the built-in ones."""

import pytest
from vertebra.safety import faults

NAME = "test_estop_from_hold"


@pytest.fixture
def registry():
    """The scenario registry, restored afterwards so other tests see the built-in scenarios only."""
    saved = dict(faults.SCENARIOS)
    yield faults.SCENARIOS
    faults.SCENARIOS.clear()
    faults.SCENARIOS.update(saved)


def test_a_scenario_registered_from_a_test_module_runs_through_the_harness(registry):
    @faults.register_scenario(NAME)
    def estop_from_hold(robot: str) -> faults.ScenarioResult:
        h = faults.Harness(robot)
        h.start_hold()
        h.inject(h.rt.loop.estop)
        h.run(0.1)
        r = h.outcome(NAME, "estop", declared="estop")
        r.detected = h.snaps[0]["safety_mode"] == "ESTOP"
        r.ticks_to_detection = 0 if r.detected else None
        r.fell_expected = None
        h.close()
        return faults.finish(r, same_tick=r.ticks_to_safe == 0)

    assert registry[NAME] is estop_from_hold and list(registry)[-1] == NAME
    progress: list[str] = []
    [r] = faults.run(["go2"], [NAME], progress=progress.append)
    assert (r.scenario, r.robot, r.declared, r.response) == (NAME, "go2", "estop", "estop")
    assert r.passed and r.ticks_to_safe == 0 and r.checks == {"same_tick": True}, r
    assert progress == [f"[1/1] go2 {NAME}: PASS (response estop, detection 0 ticks, safe after 0 ticks)"]
    row = f"| go2 | {NAME} | estop | estop | estop | same tick | same tick |"
    assert row in faults.markdown_report([r], {"go2": 500.0})
    with pytest.raises(ValueError, match=NAME):  # the error lists every registered scenario
        faults.run(["go2"], ["no_such_fault"])


def test_a_name_is_registered_once(registry):
    with pytest.raises(ValueError, match="'state_loss' is already registered"):
        faults.register_scenario("state_loss")(lambda robot: faults.ScenarioResult("state_loss", robot, "x", "stop"))
    assert registry["state_loss"] is faults.state_loss
