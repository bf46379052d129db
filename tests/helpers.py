"""Test helpers: polling instead of sleeping, and produce/consume through streamer.kafka.io."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from confluent_kafka import OFFSET_BEGINNING

from streamer.kafka.admin import topic_partitions
from streamer.kafka.io import NotAtEnd, produce_all, read_to_end

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
    return produce_all(
        bootstrap, {}, topic, records, timeout=60, defaults=conf, partition=partition
    )


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
    each round reading every partition on to its end (:func:`read_to_end`), so every
    record present (duplicates and any other surplus included) is returned."""
    return consume_topics(bootstrap, [topic], expected, timeout)


def consume_topics(
    bootstrap: str,
    topics: Iterable[str],
    expected: int,
    timeout: float = 120.0,
    *,
    settle: float = 0.0,
) -> list[Record]:
    """:func:`consume_all` over several topics, ``expected`` records in all; with
    ``settle``, once they arrived, wait that long and read on to the end once more, so that
    a surplus still on its way (duplicates) is seen too."""
    topics = list(topics)
    deadline = time.monotonic() + timeout
    partitions = topic_partitions(bootstrap, {}, topics)
    starts = {(t, p): OFFSET_BEGINNING for t, ps in partitions.items() for p in ps}
    records: list[Record] = []

    def read_on() -> None:
        ranges = {tp: (start, None) for tp, start in starts.items()}
        left = max(10.0, deadline - time.monotonic())  # a busy broker's first fetch takes time
        try:
            for message in read_to_end(bootstrap, {}, ranges=ranges, timeout=left):
                records.append(_record(message))
                starts[(message.topic(), message.partition())] = message.offset() + 1
        except NotAtEnd as exc:  # a failure of this check, as the count's is
            raise AssertionError(f"{len(records)} of {expected} records in {topics}: {exc}") from exc

    while True:
        read_on()
        if len(records) >= expected:
            break
        assert time.monotonic() < deadline, f"{len(records)} of {expected} records in {topics}"
        time.sleep(0.2)
    if settle:
        time.sleep(settle)
        read_on()
    return records


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
