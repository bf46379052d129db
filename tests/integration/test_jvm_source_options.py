"""Spark's Kafka source options reach Spark's source (jvm backend): headers ride from each
record to its output, and the other options are taken as given."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import Producer

from streamer.kafka.io import Delivery, finish, read_to_end, send
from tests.helpers import consume_all
from tests.integration.models import event_records
from tests.integration.runner import Running, source_positions

pytestmark = pytest.mark.integration


def test_include_headers_carries_each_records_headers_to_its_output(
    spark, kafka_bootstrap, service_topics, service_config
):
    topics = service_topics(partitions=2)
    events = [*event_records(50, seed=91), (b"bad", b"{nope")]
    producer, delivery = Producer({"bootstrap.servers": kafka_bootstrap}), Delivery()
    for i, (key, value) in enumerate(events):
        headers = [("trace", b"t-%d" % i)]
        send(producer, topics["in"], value, key, headers=headers, on_delivery=delivery)
    finish(producer, delivery, topics["in"], timeout=30)
    config = service_config(
        topics,
        kafka={
            "backend": "jvm",
            "source_options": {"includeHeaders": True, "minPartitions": 4},
        },
        spark={"trigger": "500 milliseconds"},
    )
    running = Running(config, spark)
    try:
        outputs = consume_all(kafka_bootstrap, topics["out"], 50, timeout=240)
        dead = consume_all(kafka_bootstrap, topics["dlq"], 1, timeout=60)
    finally:
        result = running.stop()
    assert result.outcome == "stopped", result.error
    assert len(source_positions(outputs + dead)) == len(events)
    by_key = {e[0]: i for i, e in enumerate(events)}
    headers = _headers(kafka_bootstrap, [topics["out"], topics["dlq"]])
    assert len(headers) == len(events)
    for key, found in headers.items():
        assert found == [("trace", b"t-%d" % by_key[key])], (key, found)


def _headers(bootstrap: str, topics: list[str]) -> dict[bytes, list]:
    """Each record's headers, by the event key its JSON value names."""
    return {
        json.loads(m.value())["key"].encode(): m.headers()
        for m in read_to_end(bootstrap, {}, topics, timeout=120)
    }
