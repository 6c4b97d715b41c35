"""`vertebra hil`: the bench-rig harness (rig configs, scenarios, reports)."""
