"""`vertebra sim-bridge`: the simulated robot on DDS, as the real robot speaks it."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

from vertebra.runtime.commands import robot_names


def run(args: argparse.Namespace) -> int:
    from vertebra.drivers.sim_bridge import SimBridge
    from vertebra.runtime.errors import VertebraError

    if args.seconds is not None and not args.seconds > 0:
        print("vertebra sim-bridge: --seconds: must be > 0", file=sys.stderr)
        return 2
    try:
        bridge = SimBridge(args.robot, domain_id=args.domain, network_interface=args.interface,
                           lockstep=args.lockstep, noise=args.noise, motion_service=not args.released,
                           motion_service_mode=args.motion_service_mode, faults=args.faults)
        bridge.start()
    except (VertebraError, ValueError, RuntimeError) as e:
        print(f"vertebra sim-bridge: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if not args.quiet:
        service = ("released" if args.released
                   else f"'{args.motion_service_mode}' active (release it: motion_switcher ReleaseMode)")
        print(f"vertebra sim-bridge: {args.robot} on DDS domain {args.domain}, interface {args.interface or '(any)'}"
              f"{', lockstep' if args.lockstep else ''}; built-in motion service {service}"
              f"{f'; hardware faults from {args.faults}' if args.faults else ''}",
              file=sys.stderr, flush=True)
    end = time.monotonic() + args.seconds if args.seconds else None
    while not stop.is_set() and (end is None or time.monotonic() < end):
        stop.wait(0.1)
    counters = bridge.counters()
    faults = bridge.faults()
    bridge.close()
    if args.json:
        print(json.dumps({"robot": args.robot, "counters": counters, "faults": faults}))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    b = subparsers.add_parser("sim-bridge", help="the simulated robot on DDS, speaking what the Unitree robot speaks",
                              description="Vertebra's MuJoCo robot exposed over Cyclone DDS as the real Unitree G1 or "
                                          "Go2: rt/lowstate published with a valid CRC, rt/lowcmd taken (bad CRCs "
                                          "dropped), the motor-board PD law at every physics step. Unitree's built-in "
                                          "motion service is emulated as the robot boots with it: active, answering "
                                          "motion_switcher (rt/api/motion_switcher/request: CheckMode, SelectMode, "
                                          "ReleaseMode), publishing rt/sportmodestate and ignoring rt/lowcmd until a "
                                          "controller releases it (--released: start released). Runs until SIGTERM "
                                          "or Ctrl-C (or --seconds).")
    b.add_argument("--robot", required=True, choices=robot_names(), help="robot")
    b.add_argument("--domain", type=int, default=0, help="DDS domain id (default 0, as on the robot)")
    b.add_argument("--interface", default="lo", help="network interface (default lo: this machine only)")
    b.add_argument("--lockstep", action="store_true",
                   help="advance one control period per command received (deterministic tests)")
    b.add_argument("--noise", action="store_true", help="the robot config's sensor noise")
    b.add_argument("--released", action="store_true",
                   help="start with the built-in motion service released (default: active, as the robot boots)")
    b.add_argument("--motion-service-mode", default="normal", metavar="NAME",
                   help="the mode motion_switcher CheckMode names while the service is active (default normal)")
    b.add_argument("--faults", default=None, metavar="FILE.yaml",
                   help="emulate hardware faults (all off by default), from a YAML mapping: joints: {<joint name>: "
                        "{sign: -1 (motor wired reversed), offset_rad (encoder offset, |o| <= 0.5), friction_scale "
                        "(0.1-20, x damping and dry friction), torque_limit_scale (0.05-1, of the effort limit), "
                        "heat_scale (0-20, with motor_thermal)}}, state_drop_probability and "
                        "crc_corrupt_probability (0-0.5, per rt/lowstate sample), command_latency_ms (0-200), "
                        "seed, motor_thermal: {heating_c_per_nm2_s, time_constant_s} (vertebra/drivers/bridge_faults.py)")
    b.add_argument("--seconds", type=float, default=None, help="stop after this long (default: until signalled)")
    b.add_argument("--json", action="store_true", help="print the bridge's counters as JSON at exit")
    b.add_argument("--quiet", action="store_true", help="no start-up message")
    b.set_defaults(func=run)
