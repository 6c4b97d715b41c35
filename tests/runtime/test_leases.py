"""Motion authority: Spot-style leases (vertebra.runtime.service.leases), on a clock the test moves."""

import pytest

from vertebra.policies.protocol import ProtocolError
from vertebra.runtime.service.leases import LeaseManager


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_one_holder_at_a_time_and_force_takes_it_over():
    clock = Clock()
    m = LeaseManager(1.0, clock)
    a, old = m.acquire("alice")
    assert old is None and m.state() == "held" and m.describe()["holder"] == "alice"
    with pytest.raises(ProtocolError) as e:
        m.acquire("bob")
    assert e.value.code == "lease_held" and "alice" in str(e.value)
    b, old = m.acquire("bob", force=True)
    assert old.holder == "alice" and m.takeovers == 1
    with pytest.raises(ProtocolError) as e:  # alice's token is revoked at once
        m.retain(a.token)
    assert e.value.code == "no_lease"
    assert m.check(b.token).holder == "bob"


def test_a_lease_not_retained_goes_stale_and_may_be_acquired_without_force():
    clock = Clock()
    m = LeaseManager(1.0, clock)
    a, _ = m.acquire("alice")
    clock.t += 0.9
    m.retain(a.token)
    clock.t += 0.9
    assert m.state() == "held" and m.stale_for_s() == 0.0
    clock.t += 0.6
    assert m.state() == "stale" and m.stale_for_s() == pytest.approx(0.5)
    m.retain(a.token)  # the holder may still come back while nobody else took it
    assert m.state() == "held"
    clock.t += 2.0
    b, old = m.acquire("bob")  # stale: no force needed, and it is not counted as a take-over
    assert old.holder == "alice" and m.takeovers == 0 and m.check(b.token).holder == "bob"


def test_returned_and_unknown_tokens_are_refused():
    m = LeaseManager(1.0, Clock())
    with pytest.raises(ProtocolError, match="nobody holds it"):
        m.check("f" * 32)
    a, _ = m.acquire("alice")
    m.give_back(a.token)
    assert m.state() == "free" and m.describe() is None
    with pytest.raises(ProtocolError) as e:
        m.retain(a.token)
    assert e.value.code == "no_lease"
