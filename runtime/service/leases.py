"""Motion authority: one client at a time holds the lease (Boston Dynamics Spot's lease model).

- **acquire** when the lease is free (or stale) gives a new token; while another client holds it,
  acquiring is refused (``lease_held``, naming the holder) unless the request says ``force``: then
  the holder's token is revoked at once (take-over, an event) and the taker gets a new one.
- **retain** is the keep-alive: a held lease not retained for ``timeout_s`` goes **stale**. The
  service then reacts (an ACTIVE robot goes to HOLD; still stale after another ``timeout_s``, a
  controlled stop), and anyone may acquire it without force. Its holder may still retain it (it
  becomes fresh again) until someone else acquires it.
- **return** frees it.
Requests that move the robot carry the token; a revoked, returned or unknown token is refused
(``no_lease``). E-stop needs no lease; status needs none.

The clock is injectable (tests); nothing here does I/O.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vertebra.policies.protocol import ProtocolError


@dataclass
class Lease:
    token: str
    holder: str
    acquired_s: float
    retained_s: float


class LeaseManager:
    """The one lease over a robot's motion."""

    def __init__(self, timeout_s: float, clock: Callable[[], float] = time.monotonic):
        self.timeout_s = float(timeout_s)
        self.clock = clock
        self.lease: Lease | None = None
        self.takeovers = 0

    def _fresh(self, lease: Lease, now: float) -> bool:
        return now - lease.retained_s <= self.timeout_s

    def acquire(self, client: str, force: bool = False) -> tuple[Lease, Lease | None]:
        """A new lease for `client`, and the lease it replaced when that was taken over (held and
        fresh: force was needed) or had gone stale; None when it was free."""
        now = self.clock()
        old = self.lease
        if old is not None and self._fresh(old, now) and not force:
            raise ProtocolError("lease_held", f"the lease is held by '{old.holder}' (retained "
                                              f"{now - old.retained_s:.1f} s ago); ask them to return it, or take it "
                                              "with force (an event in the log)")
        if old is not None and self._fresh(old, now):
            self.takeovers += 1
        self.lease = Lease(secrets.token_hex(16), client, now, now)
        return self.lease, old

    def check(self, token: str) -> Lease:
        """The lease `token` names, when it is the current one (refused: ``no_lease``)."""
        lease = self.lease
        if lease is None or not secrets.compare_digest(lease.token.encode(), token.encode()):
            holder = f"; it is held by '{lease.holder}'" if lease is not None else "; nobody holds it"
            raise ProtocolError("no_lease", "this request needs the lease (motion authority) and the token given is "
                                            f"not the current one{holder}")
        return lease

    def retain(self, token: str) -> Lease:
        lease = self.check(token)
        lease.retained_s = self.clock()
        return lease

    def give_back(self, token: str) -> Lease:
        lease = self.check(token)
        self.lease = None
        return lease

    def state(self) -> str:
        """free, held or stale."""
        if self.lease is None:
            return "free"
        return "held" if self._fresh(self.lease, self.clock()) else "stale"

    def stale_for_s(self) -> float:
        """How long the held lease has been stale (0 when free or fresh)."""
        if self.lease is None:
            return 0.0
        return max(0.0, self.clock() - self.lease.retained_s - self.timeout_s)

    def describe(self) -> dict[str, Any] | None:
        lease = self.lease
        if lease is None:
            return None
        now = self.clock()
        return {"holder": lease.holder, "state": self.state(), "held_s": round(now - lease.acquired_s, 3),
                "retained_ago_s": round(now - lease.retained_s, 3), "timeout_s": self.timeout_s}
