"""Benchmarks behind `vertebra bench <name>`: each measures Vertebra and, in the same run, the baseline a
user would otherwise have, and returns one JSON-ready dict (tests never assert wall-clock times).

- ``loop``: wake-up lateness of the C++ real-time loop vs a Python ``time.sleep`` loop.
- ``wbc``: per-tick time of the C++ whole-body controller vs the same QP in Python (pinocchio + proxsuite).
- ``transport``: policy protocol round trip vs an openpi-style websocket server
  (vertebra.policies.ws_baseline).
"""
