"""A 30-second broker outage mid-stream, on both backends: the Apache Kafka process is
stopped and restarted on the same data directory, events are produced before, during and
after it, and every event comes out, with duplicates within the at-least-once bound."""

from __future__ import annotations

import threading
import time

import pytest

from streamer.kafka.admin import create_topics
from tests.helpers import assert_eventually, consume_all, produce
from tests.integration.models import event_records
from tests.integration.runner import Running, config_for, source_positions

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 30
PER_BATCH = 60


def test_service_rides_out_a_30s_broker_outage(
    spark, restartable_broker, fraud_classifier, tmp_path, kafka_backend, figures
):
    bootstrap = restartable_broker.bootstrap_servers
    topics = {"in": "in", "out": "out", "dlq": "dlq"}
    create_topics(bootstrap, {}, {topics["in"]: 2, topics["out"]: 1, topics["dlq"]: 1})
    config = config_for(
        tmp_path,
        bootstrap=bootstrap,
        topics=topics,
        model=fraud_classifier,
        spark={"trigger": "500 milliseconds", "max_offsets_per_trigger": PER_BATCH},
        kafka={"backend": kafka_backend},
    )
    before = event_records(1000, seed=41, prefix="before")
    during = event_records(300, seed=42, prefix="during")
    after = event_records(300, seed=43, prefix="after")
    produce(bootstrap, topics["in"], before)
    running = Running(config, spark)
    try:
        assert_eventually(lambda: _scored_at_least(running, 200), timeout=240)
        assert running.service.stats.totals().input_rows < len(before), "drained already"
        restartable_broker.stop()
        outage_started = time.monotonic()
        # Produced while the broker is down: the producer holds them until it is back.
        delivered: list[int] = []
        producer = threading.Thread(
            target=lambda: delivered.append(
                produce(bootstrap, topics["in"], during, **{"message.timeout.ms": 300_000})
            )
        )
        producer.start()
        while time.monotonic() - outage_started < OUTAGE_SECONDS:
            assert running.service.query.isActive, running.service.query.exception()
            time.sleep(1)
        restartable_broker.start()
        producer.join(timeout=120)
        assert delivered == [len(during)], "events produced during the outage were not delivered"
        produce(bootstrap, topics["in"], after)
        total = len(before) + len(during) + len(after)
        outputs = consume_all(bootstrap, topics["out"], total, timeout=300)
    finally:
        result = running.stop()
    assert result.outcome == "stopped", result.error
    seen = source_positions(outputs)
    duplicates = sum(n - 1 for n in seen.values())
    figures.append(
        f"broker outage {OUTAGE_SECONDS}s backend={kafka_backend}: events={total} "
        f"lost={total - len(seen)} duplicates={duplicates}"
    )
    assert len(seen) == total, f"lost {total - len(seen)}"
    # At-least-once: a batch whose write failed in the outage is written again, once.
    assert duplicates <= 2 * PER_BATCH, f"{duplicates} duplicates, more than a batch per partition"


def _scored_at_least(running, n):
    outputs = running.service.stats.totals().outputs
    assert outputs >= n, f"{outputs} < {n}"
