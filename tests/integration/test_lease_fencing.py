"""An owner whose lease was taken over (declared dead while alive) stops, exits as failed
and never moves the new owner's position: the epoch is checked before every offsets write."""

from __future__ import annotations

import pytest

from streamer.handoff.lease import RUNNING, FileLeaseStore, Lease
from streamer.offsets.stores import FileStore
from tests.helpers import assert_eventually, consume_all, produce
from tests.integration.models import event_records
from tests.integration.runner import Running

pytestmark = pytest.mark.integration


def test_a_superseded_owner_stops_without_persisting(
    spark, kafka_bootstrap, tmp_path, service_topics, service_config
):
    topics = service_topics(partitions=2)
    produce(kafka_bootstrap, topics["in"], event_records(40, seed=71))
    config = service_config(
        topics,
        spark={"trigger": "500 milliseconds"},
        handoff={"heartbeat_seconds": 1.0, "lease_timeout_seconds": 30, "warmup_rows": 16},
    )
    running = Running(config, spark, color="blue")
    consume_all(kafka_bootstrap, topics["out"], 40, timeout=240)
    store = FileStore(tmp_path / "offsets")

    def persisted_all():
        stored = store.load()
        assert stored is not None and sum(stored.offsets[topics["in"]].values()) == 40

    assert_eventually(persisted_all, timeout=60)
    before = store.load()

    leases = FileLeaseStore(tmp_path / "offsets")
    lease, token = leases.read()
    assert (lease.owner, lease.state) == ("blue", RUNNING)
    leases.write(Lease(owner="green", epoch=lease.epoch + 1, state=RUNNING, instance="g"), token)
    produce(kafka_bootstrap, topics["in"], event_records(40, seed=72, prefix="late"))

    def stopped_by_itself():
        assert not running._thread.is_alive()

    assert_eventually(stopped_by_itself, timeout=120)
    result = running.stop()
    assert result.outcome == "failed"
    assert "lease was taken over" in result.error
    after = store.load()
    assert after.generation == before.generation, "the superseded owner persisted offsets"
    current, _ = leases.read()
    assert (current.owner, current.epoch, current.state) == ("green", lease.epoch + 1, RUNNING)
