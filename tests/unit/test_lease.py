"""The handoff lease on the file store: compare-and-swap, takeover, staleness, fencing."""

from __future__ import annotations

import threading

import pytest

from streamer.errors import DeployError
from streamer.handoff.lease import (
    DRAINING,
    RELEASED,
    RUNNING,
    FileLeaseStore,
    Lease,
    LeaseConflict,
    LeaseHolder,
)
from tests.helpers import assert_eventually


def holder(store, color, instance, *, timeout=5.0, heartbeat=0.1) -> LeaseHolder:
    return LeaseHolder(
        store, color, instance, lease_timeout=timeout, heartbeat=heartbeat, poll=0.02
    )


def test_write_is_a_compare_and_swap(tmp_path):
    store = FileLeaseStore(tmp_path)
    first = Lease(owner="blue", epoch=1, state=RUNNING, instance="a")
    token = store.write(first, None)
    with pytest.raises(LeaseConflict):
        store.write(first, None)
    second = store.write(Lease(owner="green", epoch=2, state=RUNNING, instance="b"), token)
    with pytest.raises(LeaseConflict):
        store.write(first, token)  # stale version
    lease, now = store.read()
    assert (lease.owner, lease.epoch, now) == ("green", 2, second)


def test_concurrent_writers_never_lose_an_update(tmp_path):
    store = FileLeaseStore(tmp_path)
    store.write(Lease(owner="blue", epoch=0, state=RUNNING, instance="x"), None)
    successes = []

    def bump(name: str) -> None:
        for _ in range(100):
            lease, token = store.read()
            try:
                store.write(
                    Lease(owner=name, epoch=lease.epoch + 1, state=RUNNING, instance=name), token
                )
            except LeaseConflict:
                continue
            successes.append(name)

    threads = [threading.Thread(target=bump, args=(n,)) for n in ("blue", "green", "red")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lease, _ = store.read()
    assert lease.epoch == len(successes)


def test_second_instance_without_takeover_is_refused(tmp_path):
    store = FileLeaseStore(tmp_path)
    blue = holder(store, "blue", "b1")
    assert blue.acquire(takeover=False, drain_timeout=1).how == "new"
    with pytest.raises(DeployError, match=r"held by blue.*--takeover"):
        holder(store, "green", "g1").acquire(takeover=False, drain_timeout=1)


def test_takeover_waits_for_the_owner_to_drain_and_release(tmp_path):
    store = FileLeaseStore(tmp_path)
    blue = holder(store, "blue", "b1")
    blue.acquire(takeover=False, drain_timeout=1)
    asked = []
    requested = threading.Event()

    def drain() -> None:  # what the service does on its main thread once asked
        requested.wait(10)
        blue.release({"in": {0: 42, 1: 7}}, last_output_at=123)

    def on_handoff(successor: str) -> None:
        asked.append(successor)
        requested.set()

    threading.Thread(target=drain, daemon=True).start()
    blue.start_heartbeat(on_handoff=on_handoff, on_lost=lambda _: None)
    green = holder(store, "green", "g1")
    acquired = green.acquire(takeover=True, drain_timeout=10)
    assert asked == ["green"]
    assert acquired.how == "released"
    assert acquired.previous.state == RELEASED
    assert acquired.previous.offsets == {"in": {0: 42, 1: 7}}
    assert acquired.previous.last_output_at == 123
    lease, _ = store.read()
    assert (lease.owner, lease.epoch, lease.state, lease.instance) == ("green", 2, RUNNING, "g1")


def test_a_silent_owner_is_taken_over_after_the_timeout_and_fenced(tmp_path):
    store = FileLeaseStore(tmp_path)
    blue = holder(store, "blue", "b1", timeout=0.5)
    blue.acquire(takeover=False, drain_timeout=1)  # never heartbeats: a crashed owner
    green = holder(store, "green", "g1", timeout=0.5)
    acquired = green.acquire(takeover=True, drain_timeout=10)
    assert acquired.how == "stale"
    assert acquired.waited_seconds >= 0.5
    lost = []
    blue.start_heartbeat(on_handoff=lambda _: None, on_lost=lost.append)

    def fenced() -> None:
        assert lost

    assert_eventually(fenced, timeout=5)
    assert lost[0].owner == "green"
    assert not blue.owned
    assert blue.release({"in": {0: 1}}, None) is False
    lease, _ = store.read()
    assert (lease.owner, lease.epoch, lease.state) == ("green", 2, RUNNING)


def test_a_request_the_owner_has_not_seen_is_withdrawn_at_the_deadline(tmp_path):
    store = FileLeaseStore(tmp_path)
    blue = holder(store, "blue", "b1", timeout=30)
    blue.acquire(takeover=False, drain_timeout=1)  # alive (not stale) but not heartbeating
    with pytest.raises(DeployError, match=r"did not release.*withdrawn and blue keeps running"):
        holder(store, "green", "g1", timeout=30).acquire(takeover=True, drain_timeout=0.5)
    lease, _ = store.read()
    assert (lease.owner, lease.state, lease.successor) == ("blue", RUNNING, None)


def test_an_acknowledged_request_is_never_withdrawn(tmp_path):
    """Once the owner is handing over, undoing the request would leave nobody consuming."""
    store = FileLeaseStore(tmp_path)
    blue = holder(store, "blue", "b1", timeout=5, heartbeat=0.05)
    blue.acquire(takeover=False, drain_timeout=1)
    asked = threading.Event()
    blue.start_heartbeat(on_handoff=lambda _: asked.set(), on_lost=lambda _: None)
    with pytest.raises(DeployError, match=r"acknowledged the request.*--takeover again"):
        holder(store, "green", "g1", timeout=5).acquire(takeover=True, drain_timeout=1)
    assert asked.is_set()
    lease, _ = store.read()
    assert (lease.state, lease.successor, lease.handing_over) == (DRAINING, "green", True)
    blue.release({"in": {0: 5}}, None)  # the slow drain finishes
    acquired = holder(store, "green", "g2", timeout=5).acquire(takeover=True, drain_timeout=5)
    assert (acquired.how, acquired.previous.offsets) == ("released", {"in": {0: 5}})


def test_a_second_successor_is_refused_while_one_is_taking_over(tmp_path):
    store = FileLeaseStore(tmp_path)
    store.write(
        Lease(owner="blue", epoch=3, state=DRAINING, instance="b1", successor="green"), None
    )
    with pytest.raises(DeployError, match="green is already taking over"):
        holder(store, "blue", "b2").acquire(takeover=True, drain_timeout=1)


def test_an_interrupted_takeover_is_withdrawn(tmp_path):
    store = FileLeaseStore(tmp_path)
    blue = holder(store, "blue", "b1", timeout=5)
    blue.acquire(takeover=False, drain_timeout=1)
    blue.start_heartbeat(on_handoff=lambda _: None, on_lost=lambda _: None)
    calls = iter([False, False, True])
    try:
        with pytest.raises(DeployError, match="interrupted"):
            holder(store, "green", "g1").acquire(
                takeover=True, drain_timeout=30, cancelled=lambda: next(calls, True)
            )
        lease, _ = store.read()
        assert (lease.state, lease.successor) == (RUNNING, None)
    finally:
        blue.release(None, None)
