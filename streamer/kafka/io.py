"""The two loops written around confluent-kafka everywhere: produce until every record is
delivered, and read partitions to their end.

Producing: :func:`send` is one ``produce()`` that waits while librdkafka's local queue is
full; :class:`Delivery` counts the broker's acknowledgements; :func:`finish` flushes and
raises with the cause when anything was not delivered. :func:`produce_all` is the three
together, for an iterable of ``(key, value)`` records, optionally at a rate.

Reading: :func:`read_to_end` yields the records of whole topics, or of offset ranges, and
stops when every partition is at its end: the range's end, or end-of-partition, which the
broker signals at the high watermark as it stands then. The end is an offset reached, not a
record seen: a transaction marker takes an offset no record has. End-of-partition comes
from fetch responses, so it is right on tansu too, whose ListOffsets(latest) is not.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from streamer.errors import KafkaIOError, MissingTopicError
from streamer.kafka.admin import client_config
from streamer.offsets.core import TP

Range = tuple[int, int | None]
"""``(start, end)`` offsets of one partition, ``end`` exclusive; ``None``: to its end."""


class Delivery:
    """A producer's ``on_delivery`` callback: counts acknowledged records, keeps failures."""

    def __init__(self) -> None:
        self.delivered = 0
        self.failures: list[str] = []

    def __call__(self, error: Any, _message: Any) -> None:
        if error is None:
            self.delivered += 1
        else:
            self.failures.append(str(error))


def send(
    producer: Producer,
    topic: str,
    value: bytes | None,
    key: bytes | None = None,
    *,
    deadline: float | None = None,
    **kwargs: Any,
) -> None:
    """``producer.produce(...)``, serving delivery reports while the local queue is full.
    ``deadline`` (``time.monotonic()``): give up then with :class:`KafkaIOError`."""
    while True:
        try:
            producer.produce(topic, value=value, key=key, **kwargs)
            return
        except BufferError:
            if deadline is not None and time.monotonic() > deadline:
                raise KafkaIOError(f"the producer's queue for {topic} stayed full") from None
            producer.poll(0.05)


def finish(producer: Producer, delivery: Delivery, topic: str, timeout: float) -> int:
    """Wait up to ``timeout`` seconds for every record to be acknowledged; the number
    delivered, or :class:`KafkaIOError` with how many were not and the first cause."""
    left = producer.flush(timeout)
    if left:
        cause = f" (first failure: {delivery.failures[0]})" if delivery.failures else ""
        raise KafkaIOError(f"{left} records not delivered to {topic} within {timeout:g}s{cause}")
    if delivery.failures:
        raise KafkaIOError(
            f"{len(delivery.failures)} records failed to deliver to {topic}: {delivery.failures[0]}"
        )
    return delivery.delivered


def produce_all(
    bootstrap: str,
    client: Mapping[str, Any],
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None]],
    *,
    timeout: float = 120.0,
    defaults: Mapping[str, Any] | None = None,
    rate: float | None = None,
    partition: int | Callable[[int], int] | None = None,
    deadline: float | None = None,
    delivery: Delivery | None = None,
) -> int:
    """Produce ``(key, value)`` records and wait until each is acknowledged; returns how
    many were delivered, or raises :class:`KafkaIOError` saying why not.

    ``client`` is ``kafka.client`` (Java names), ``defaults`` librdkafka tuning (see
    :func:`~streamer.kafka.admin.client_config`). ``rate``: records per second (None: as
    fast as the broker takes them). ``partition``: one partition, or a function of the
    record's index. ``timeout``: seconds to wait for acknowledgements after the last
    record; ``deadline`` (``time.monotonic()``) bounds the whole call instead.
    ``delivery`` counts as the records are acknowledged (for a caller's progress)."""
    producer = Producer(client_config(bootstrap, client, {"linger.ms": 20, **(defaults or {})}))
    delivery = delivery if delivery is not None else Delivery()
    started = time.monotonic()
    for i, (key, value) in enumerate(records):
        if rate:
            due = started + i / rate
            while (wait := due - time.monotonic()) > 0:
                producer.poll(min(wait, 0.05))
        kwargs = {} if partition is None else {"partition": _partition(partition, i)}
        send(producer, topic, value, key, deadline=deadline, on_delivery=delivery, **kwargs)
        if rate or i % 1000 == 0:
            producer.poll(0)
    if deadline is not None:
        timeout = max(1.0, deadline - time.monotonic())
    return finish(producer, delivery, topic, timeout)


def _partition(partition: int | Callable[[int], int], index: int) -> int:
    return partition if isinstance(partition, int) else partition(index)


class NotAtEnd(KafkaIOError):
    """:func:`read_to_end` ran out of time; ``pending`` are the partitions short of their
    end, ``read`` the records yielded."""

    def __init__(self, pending: list[TP], read: int, timeout: float) -> None:
        self.pending, self.read, self.timeout = pending, read, timeout
        super().__init__(f"read {read} records; not at the end within {timeout:g}s: {pending}")


def read_to_end(
    bootstrap: str,
    client: Mapping[str, Any],
    topics: Iterable[str] = (),
    *,
    ranges: Mapping[TP, Range] | None = None,
    timeout: float = 120.0,
    defaults: Mapping[str, Any] | None = None,
) -> Iterator[Message]:
    """The records of every partition of ``topics`` from its start, and of ``ranges``,
    each partition up to its end (see the module docstring), in offset order within a
    partition; duplicates and all. Raises :class:`MissingTopicError` for a topic that does
    not exist, :class:`NotAtEnd` after ``timeout`` seconds, :class:`KafkaIOError` on a
    fatal error."""
    consumer = Consumer(
        client_config(
            bootstrap,
            client,
            defaults={"queued.min.messages": 100_000, **(defaults or {})},
            group_id=f"streamer-read-{uuid.uuid4().hex[:8]}",
            enable_auto_commit=False,
            enable_auto_offset_store=False,
            enable_partition_eof=True,
            auto_offset_reset="earliest",
        )
    )
    try:
        wanted = dict(ranges or {})
        for topic in topics:
            try:
                info = consumer.list_topics(topic, timeout=15).topics.get(topic)
            except KafkaException as exc:
                raise KafkaIOError(f"cannot list topic {topic!r}: {exc}") from exc
            if info is None or info.error is not None:
                raise MissingTopicError(f"topic {topic!r} does not exist on {bootstrap}")
            wanted.update({(topic, p): (OFFSET_BEGINNING, None) for p in sorted(info.partitions)})
        yield from _drain(consumer, wanted, timeout)
    finally:
        consumer.close()


def where(message: Message) -> tuple[str, int, int]:
    """A consumed message's ``(topic, partition, offset)``, typed."""
    return str(message.topic()), int(message.partition() or 0), int(message.offset() or 0)


def _drain(consumer: Consumer, wanted: Mapping[TP, Range], timeout: float) -> Iterator[Message]:
    ends = {tp: end for tp, (_, end) in wanted.items()}
    pending = {tp for tp, (start, end) in wanted.items() if end is None or end > start}
    consumer.assign([TopicPartition(*tp, wanted[tp][0]) for tp in sorted(pending)])
    deadline = time.monotonic() + timeout
    read = 0
    while pending:
        if time.monotonic() > deadline:
            raise NotAtEnd(sorted(pending), read, timeout)
        try:
            messages = consumer.consume(10_000, timeout=0.2)
        except KafkaException as exc:
            raise KafkaIOError(f"cannot read from Kafka: {exc}") from exc
        done: set[TP] = set()
        for message in messages:
            topic, partition, offset = where(message)
            tp, error, end = (topic, partition), message.error(), ends.get((topic, partition))
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    if end is None or offset >= end:
                        done.add(tp)
                elif not error.retriable():
                    raise KafkaIOError(f"reading {tp[0]}[{tp[1]}]: {error}")
                continue
            if tp not in pending or (end is not None and offset >= end):
                continue
            read += 1
            yield message
            if end is not None and offset + 1 >= end:
                done.add(tp)
        pending -= done
        if done:
            consumer.pause([TopicPartition(*tp) for tp in done])
