"""The service: `vertebra run` (service.py), its control API (protocol.py, server.py, client.py, leases.py),
systemd integration (notify.py, systemd.py). docs/deploy.md is the operator's side of it."""
