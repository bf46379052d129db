"""A 30-second broker outage mid-stream: the broker process is stopped and restarted (its
storage survives, as Apache Kafka's log dirs do), and no event is lost."""

from __future__ import annotations

import time
import uuid

import pytest

from streamer.kafka.admin import create_topics
from tests.helpers import assert_eventually, consume_all, produce
from tests.integration.models import event_records
from tests.integration.runner import Running, config_for, source_positions

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 30


def test_service_rides_out_a_30s_broker_outage(spark, durable_broker, fraud_classifier, tmp_path):
    bootstrap = durable_broker.bootstrap_servers
    name = uuid.uuid4().hex[:8]
    topics = {"in": f"in-{name}", "out": f"out-{name}", "dlq": f"dlq-{name}"}
    create_topics(bootstrap, {}, {topics["in"]: 2, topics["out"]: 1, topics["dlq"]: 1})
    config = config_for(
        tmp_path,
        bootstrap=bootstrap,
        topics=topics,
        model=fraud_classifier,
        spark={"trigger": "500 milliseconds", "max_offsets_per_trigger": 60},
    )
    # Produced up front: tansu's S3 storage (our stand-in for a broker with durable log
    # dirs) stalls fetches on a partition while it is being appended to, so the stream
    # must not need both at once. The outage still lands mid-stream: with 60 events a
    # batch, the service is a few batches into the backlog.
    events = event_records(1500, seed=41, prefix="o")
    produce(bootstrap, topics["in"], events)
    running = Running(config, spark)
    try:
        assert_eventually(lambda: _scored_at_least(running, 200), timeout=240)
        before = running.service.stats.totals().input_rows
        assert before < len(events), "drained before the outage; nothing tested"
        durable_broker.stop()
        outage_started = time.monotonic()
        while time.monotonic() - outage_started < OUTAGE_SECONDS:
            assert running.service.query.isActive, running.service.query.exception()
            time.sleep(1)
        durable_broker.start()
        outputs = consume_all(bootstrap, topics["out"], len(events), timeout=300)
    finally:
        result = running.stop()
    assert result.outcome == "stopped", result.error
    seen = source_positions(outputs)
    assert len(seen) == len(events), f"lost {len(events) - len(seen)}"
    assert result.totals.input_rows >= len(events)


def _scored_at_least(running, n):
    outputs = running.service.stats.totals().outputs
    assert outputs >= n, f"{outputs} < {n}"
