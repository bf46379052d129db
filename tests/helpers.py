"""Test helpers: polling instead of sleeping, and plain confluent-kafka produce/consume."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from confluent_kafka import Consumer, Producer, TopicPartition

T = TypeVar("T")


def assert_eventually(check: Callable[[], T], timeout: float = 60.0, interval: float = 0.2) -> T:
    """Call ``check`` until it stops raising AssertionError; re-raise the last one on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(interval)


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None]],
    *,
    partition: int | None = None,
    **conf: object,
) -> int:
    """Produce (key, value) records, batched the usual way (several records per batch)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, **conf})
    count = 0
    errors: list = []
    for key, value in records:
        kwargs = {} if partition is None else {"partition": partition}
        while True:
            try:
                producer.produce(
                    topic,
                    key=key,
                    value=value,
                    on_delivery=lambda e, _m: e and errors.append(e),
                    **kwargs,
                )
                break
            except BufferError:
                producer.poll(0.05)
        count += 1
    assert producer.flush(60) == 0, "records not delivered within 60s"
    assert not errors, errors[:3]
    return count


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 120.0) -> list[Record]:
    """Read ``topic`` from the start until ``expected`` records arrived (fails on timeout),
    then keep reading briefly so that any surplus (duplicates) is seen as well."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
        records: list[Record] = []

        def enough() -> None:
            for m in consumer.consume(5000, timeout=0.5):
                if m.error() is None:
                    records.append(
                        Record(
                            m.topic(),
                            m.partition(),
                            m.offset(),
                            m.key(),
                            m.value(),
                            m.timestamp()[1],
                        )
                    )
            assert len(records) >= expected, f"{len(records)} of {expected} records in {topic}"

        assert_eventually(enough, timeout=timeout, interval=0)
        settle = time.monotonic() + 2.0
        while time.monotonic() < settle:
            for m in consumer.consume(5000, timeout=0.2):
                if m.error() is None:
                    records.append(
                        Record(
                            m.topic(),
                            m.partition(),
                            m.offset(),
                            m.key(),
                            m.value(),
                            m.timestamp()[1],
                        )
                    )
        return records
    finally:
        consumer.close()
