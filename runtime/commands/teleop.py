"""`vertebra teleop --config <deploy>`: move a running service's hand (or CoM) targets from the
keyboard or a gamepad, under a deadman (vertebra.tools.teleop)."""

from __future__ import annotations

import argparse
import sys
from vertebra.runtime.commands import bounded_float


def run(args: argparse.Namespace) -> int:
    from vertebra.runtime.commands.status import client_name, unreachable_message
    from vertebra.runtime.deploy import DeployConfig
    from vertebra.runtime.errors import VertebraError
    from vertebra.runtime.service.client import ControlClient, ServiceUnreachable
    from vertebra.tools.teleop import (
        GAMEPAD_HELP,
        KEY_HELP,
        WALK_KEY_HELP,
        DeviceContext,
        DeviceUnavailable,
        TeleopLimits,
        TeleopSession,
        make_device,
    )
    from vertebra.tools.terminal import KeyReader

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        deploy = DeployConfig.load(args.config)
        limits = TeleopLimits(step_m=args.step_m, max_speed_m_s=args.max_speed_m_s, deadman_s=args.deadman_s,
                              max_offset_m=args.max_offset_m, walk_scale=args.walk_scale)
    except VertebraError as e:
        say(f"vertebra teleop: {e}")
        return 2
    try:
        device = make_device(args.device)  # a missing module (evdev) is said before the service is asked
    except DeviceUnavailable as e:
        say(f"vertebra teleop: {e}")
        return 2
    client = ControlClient.for_deploy(deploy, client=client_name("teleop"))
    session = TeleopSession(client, hand=args.hand, limits=limits, force=args.force, say=say)
    try:
        with KeyReader() as keys:
            try:
                status = session.prepare()
                device.open(DeviceContext(keys=keys, status=status, gamepad=args.gamepad, client=client))
            except DeviceUnavailable as e:
                say(f"vertebra teleop: {e}")
                return 2
            try:
                session.acquire()
                keys_help = WALK_KEY_HELP if session.walk is not None else KEY_HELP
                say(f"vertebra teleop: {GAMEPAD_HELP if args.device == 'gamepad' else keys_help}")
                end = session.run(device)
            finally:
                session.close()
                device.close()
            say("vertebra teleop: e-stop sent; the robot is in ESTOP (vertebra recover releases it)" if end == "estop"
                else "vertebra teleop: done; the robot stays in HOLD")
            return 0
    except ServiceUnreachable as e:
        say(unreachable_message("teleop", deploy, client.endpoint, e))
        return 1
    except VertebraError as e:  # TeleopError, DeviceUnavailable (a gamepad gone), a refusal
        say(f"vertebra teleop: {e}")
        return 1
    except KeyboardInterrupt:
        say("vertebra teleop: interrupted; the lease is returned, the robot stays in HOLD")
        return 130
    finally:
        client.close()


def register(sub: argparse._SubParsersAction) -> None:
    from vertebra.tools.teleop import DEVICES, GAMEPAD_HELP, KEY_HELP, WALK_KEY_HELP

    p = sub.add_parser(
        "teleop", help="move the robot's hand (or CoM) targets from the keyboard or a gamepad, under a deadman",
        description="Teleoperate a running service's whole-body controller (controller: wbc) over SSH: take the "
                    "lease (--force takes it over, an event in the log), and on the first motion input activate "
                    "the controller (HOLD -> ACTIVE; during a policy episode an intervention is marked instead and "
                    "the policy pauses), then move the hand targets (the CoM on a robot without hands) from where "
                    "they are. Deadman: motion only while input keeps coming; no motion key for --deadman-s (a "
                    "gamepad: the shoulder button let go) -> HOLD. Each target stays within --max-offset-m of where "
                    "it started. On exit the lease is returned and the robot stays in HOLD. "
                    f"Keyboard {KEY_HELP}. The {GAMEPAD_HELP}. Under the walk controller (controller: walk) the "
                    f"keys and sticks drive the base velocity instead, at --walk-scale of the safety config's "
                    f"base_velocity bounds; letting go stops the robot standing (no HOLD mid-step), and on exit it "
                    f"is held once it stands: {WALK_KEY_HELP}. Exit status: 0, 1 (service unreachable, lease, "
                    "robot not standing), 2 (config, device unavailable).")
    p.add_argument("--config", required=True, help="deploy config: a name in configs/deploy/ or a YAML path")
    p.add_argument("--device", choices=list(DEVICES), default="keyboard",
                   help="input: " + "; ".join(f"{n}: {c.help}" for n, c in DEVICES.items()))
    p.add_argument("--hand", choices=["left", "right", "both"], default="left",
                   help="the hand to move first (tab switches); ignored on a robot without hands (the CoM moves)")
    p.add_argument("--step-m", type=bounded_float(1e-4, 0.1, "metres"), default=0.01,
                   help="target displacement per key press, m (default: 0.01)")
    p.add_argument("--max-speed-m-s", type=bounded_float(1e-3, 1.0, "m/s"), default=0.2,
                   help="the targets' speed limit, m/s (default: 0.2; a full stick deflection)")
    p.add_argument("--deadman-s", type=bounded_float(0.05, 5.0, "seconds"), default=0.5,
                   help="no motion input for this long -> hold (default: 0.5)")
    p.add_argument("--max-offset-m", type=bounded_float(0.0, 1.0, "metres"), default=0.3,
                   help="how far each target may go from where it started, per axis, m (default: 0.3)")
    p.add_argument("--walk-scale", type=bounded_float(0.01, 1.0, "a fraction"), default=0.5,
                   help="walking: a key drives its axis at this fraction of the base_velocity bound (default: 0.5)")
    p.add_argument("--gamepad", default=None, metavar="/dev/input/eventN",
                   help="the gamepad's evdev device (default: the first device with absolute axes)")
    p.add_argument("--force", action="store_true",
                   help="take the lease over from its holder (logged as a take-over)")
    p.set_defaults(func=run)
