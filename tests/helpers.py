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


def _record(m) -> Record:
    return Record(m.topic(), m.partition(), m.offset(), m.key(), m.value(), m.timestamp()[1])


def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 120.0) -> list[Record]:
    """Read ``topic`` from the start until ``expected`` records arrived (fails on timeout),
    then on until every partition's position reaches its high watermark as it stands then,
    so every record present (duplicates and any other surplus included) is returned.

    The end is the consumer's position, not the offset of a last message read: a transaction
    marker takes an offset no message has, and the position steps over it."""
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
        partitions = [TopicPartition(topic, p, 0) for p in metadata.partitions]
        consumer.assign(partitions)
        records: list[Record] = []

        def read() -> None:
            records.extend(_record(m) for m in consumer.consume(5000, timeout=0.5) if not m.error())

        def enough() -> None:
            read()
            assert len(records) >= expected, f"{len(records)} of {expected} records in {topic}"

        assert_eventually(enough, timeout=timeout, interval=0)
        ends = {}
        for tp in partitions:
            low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            ends[tp.partition] = (low, high)

        def at_the_ends() -> None:
            behind = {}
            for tp in consumer.position(partitions):
                low, high = ends[tp.partition]
                # No position yet: nothing read from that partition, which is at its end
                # only when it holds nothing.
                position = tp.offset if tp.offset >= 0 else low
                if position < high:
                    behind[tp.partition] = f"{position}/{high}"
            if behind:
                read()
                raise AssertionError(f"{topic}: partitions short of the high watermark {behind}")

        assert_eventually(at_the_ends, timeout=timeout, interval=0)
        return records
    finally:
        consumer.close()


def add_partitions(bootstrap: str, topic: str, total: int) -> None:
    """Grow ``topic`` to ``total`` partitions (CreatePartitions) and wait until metadata
    lists them."""
    from confluent_kafka.admin import AdminClient, NewPartitions

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_partitions([NewPartitions(topic, total)])[topic].result(30)

    def listed() -> None:
        found = len(admin.list_topics(topic, timeout=10).topics[topic].partitions)
        assert found == total, f"{topic} lists {found} partitions, not {total}"

    assert_eventually(listed, timeout=30)
