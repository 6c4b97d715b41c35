"""Fault injection: every fault scenario the safety supervisor must handle, run in lockstep sim.

Each scenario builds a fresh simulated robot with a FaultInjector between the simulator and the
loop, brings it to its starting state through the real procedure (hoist, enable, STANDUP, HOLD,
then ACTIVE driven by a scripted policy stream or the whole-body controller), injects one fault
and watches every tick. It reports, per fault: whether it was detected, the ticks from injection to
detection, the response taken (read from the supervisor's mode changes), the ticks until the robot
was in the declared safe state, whether it fell, the peak downward base velocity, and pass/fail
against the declared response (configs/safety/<robot>.yaml, else the default table).

Ticks count from the first tick that saw the fault (0 = handled in that same tick).

Modules
  harness    the simulated robot of one scenario, the measurements, the registry and `run()`
  scenarios  the built-in scenarios, each registered with `@register_scenario("name")`
  report     the terminal table, the `--json` document and the docs/safety.md markdown table

A scenario registered from any other module (`@faults.register_scenario("my_fault")` on a
`fn(robot) -> ScenarioResult`) runs through `run()` like the built-in ones.
"""

from vertebra.safety.faults import scenarios
from vertebra.safety.faults.harness import (
    FELL_TILT_DEG,
    MAX_IMPACT_VELOCITY_M_S,
    OUT_OF_LIMIT_JOINT,
    POLICY_PERIOD_TICKS,
    SCENARIOS,
    Harness,
    Scenario,
    ScenarioResult,
    ScriptedPolicy,
    finish,
    inject_bad_policy,
    inject_until_fault,
    limits_respected,
    out_of_limit_joint,
    register_scenario,
    run,
)
from vertebra.safety.faults.report import DOC_BEGIN, DOC_END, json_report, markdown_report, table_report, write_docs
from vertebra.safety.faults.scenarios import (
    fault_during_stopping,
    frozen_state,
    gain_escalation,
    loop_overrun_burst,
    low_battery,
    motor_error,
    nan_state,
    nan_target,
    operator_estop,
    operator_stop,
    out_of_limit_target,
    over_temperature,
    policy_stall,
    push_beyond_recovery,
    reset_without_clearing,
    solver_failure,
    state_loss,
)

__all__ = [
    "DOC_BEGIN", "DOC_END", "FELL_TILT_DEG", "MAX_IMPACT_VELOCITY_M_S", "OUT_OF_LIMIT_JOINT", "POLICY_PERIOD_TICKS",
    "SCENARIOS", "Harness", "Scenario", "ScenarioResult", "ScriptedPolicy", "fault_during_stopping", "finish",
    "frozen_state", "gain_escalation", "inject_bad_policy", "inject_until_fault", "json_report", "limits_respected",
    "loop_overrun_burst", "low_battery", "markdown_report", "motor_error", "nan_state", "nan_target", "operator_estop",
    "operator_stop", "out_of_limit_joint", "out_of_limit_target", "over_temperature", "policy_stall",
    "push_beyond_recovery", "register_scenario", "reset_without_clearing", "run", "scenarios", "solver_failure",
    "state_loss", "table_report", "write_docs",
]
