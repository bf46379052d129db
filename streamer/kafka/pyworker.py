"""The python backend's work in Python workers (:mod:`.pysource` plans it on the driver).

- One consumer and one producer per Python worker process and cluster, reused across tasks
  (:func:`worker_consumer`, :func:`worker_producer`); consumers use ``assign``, never a group.
- :func:`read_chunks` reads one partition's offset range as :class:`~streamer.scoring.chunk.Chunk`
  s of up to ``batch_rows`` records, one column per field.
- :class:`Delivery` produces records and waits until each one is acknowledged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from pyspark.sql.datasource import InputPartition

from streamer.errors import KafkaIOError
from streamer.kafka.admin import client_config
from streamer.scoring.chunk import Chunk

log = logging.getLogger(__name__)

CONSUMER_DEFAULTS: Mapping[str, Any] = {
    "fetch.wait.max.ms": 10,
    "queued.min.messages": 20_000,
    # librdkafka pauses fetching for this long whenever its local queue holds
    # queued.min.messages; at the default 1000 ms a reader draining a backlog stalled after
    # every 20,000 records (21 µs per record read, 1.5 µs with 5 ms).
    "fetch.queue.backoff.ms": 5,
}

PRODUCER_DEFAULTS: Mapping[str, Any] = {
    # Java's partitioner, so a keyed record lands on the same partition on both backends
    "partitioner": "murmur2_random",
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 5,
    "batch.size": 1_000_000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 1_000_000,
}


@dataclass(frozen=True)
class KafkaInputPartition(InputPartition):
    topic: str
    partition: int
    start: int
    end: int


def read_chunks(
    consumer: Consumer, part: KafkaInputPartition, poll_timeout: float, batch_rows: int = 10_000
) -> Iterator[Chunk]:
    """Records ``[part.start, part.end)`` of one partition, up to ``batch_rows`` at a time."""
    consumer.assign([TopicPartition(part.topic, part.partition, part.start)])
    keys: list[bytes | None] = []
    values: list[bytes | None] = []
    offsets: list[int] = []
    stamps: list[int] = []
    position = part.start
    idle_since = time.monotonic()

    def flush() -> Chunk:
        nonlocal keys, values, offsets, stamps
        n = len(offsets)
        chunk = Chunk(
            keys,
            values,
            [part.topic] * n,
            [part.partition] * n,
            offsets,
            np.asarray(stamps, dtype=np.float64),
        )
        keys, values, offsets, stamps = [], [], [], []
        return chunk

    try:
        while position < part.end:
            messages = consumer.consume(min(batch_rows, part.end - position), timeout=0.5)
            if not messages:
                if time.monotonic() - idle_since > poll_timeout:
                    raise KafkaIOError(
                        f"no records from {part.topic}[{part.partition}] at offset {position} "
                        f"for {poll_timeout:.0f}s (range ends at {part.end})"
                    )
                continue
            idle_since = time.monotonic()
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        if int(message.offset() or 0) >= part.end:
                            position = part.end
                        continue
                    raise KafkaIOError(
                        f"reading {part.topic}[{part.partition}] at {position}: {error}"
                    )
                offset = int(message.offset())  # type: ignore[arg-type]
                if offset >= part.end:
                    position = part.end
                    break
                keys.append(message.key())
                values.append(message.value())
                offsets.append(offset)
                stamps.append(message.timestamp()[1])
                position = offset + 1
            if len(offsets) >= batch_rows:
                yield flush()
        if offsets:
            yield flush()
    finally:
        consumer.unassign()


_clients_lock = threading.Lock()
_consumers: dict[tuple, Consumer] = {}
_producers: dict[tuple, Producer] = {}


def _key(bootstrap: str, settings: Mapping[str, Any]) -> tuple:
    return (bootstrap, *sorted((k, str(v)) for k, v in settings.items()))


def worker_consumer(bootstrap: str, settings: Mapping[str, str]) -> Consumer:
    """One consumer per Python worker process and cluster, reused across tasks."""
    key = _key(bootstrap, settings)
    with _clients_lock:
        consumer = _consumers.get(key)
        if consumer is None:
            consumer = Consumer(
                client_config(
                    bootstrap,
                    settings,
                    defaults=CONSUMER_DEFAULTS,
                    group_id="streamer-reader",
                    enable_auto_commit=False,
                    enable_auto_offset_store=False,
                    enable_partition_eof=True,
                    auto_offset_reset="error",
                )
            )
            _consumers[key] = consumer
        return consumer


def worker_producer(bootstrap: str, settings: Mapping[str, str]) -> Producer:
    """One producer per Python worker process and cluster, reused across tasks."""
    key = _key(bootstrap, settings)
    with _clients_lock:
        producer = _producers.get(key)
        if producer is None:
            producer = Producer(client_config(bootstrap, settings, defaults=PRODUCER_DEFAULTS))
            _producers[key] = producer
        return producer


class Delivery:
    """Produces records with the worker's producer; :meth:`finish` waits until every one of
    its own records is acknowledged and raises if any was not.

    Several deliveries may share the worker's producer; each counts only its own records, so
    a shadow delivery (:meth:`produce_shadow`, :meth:`finish_shadow`) that fails or stalls
    never fails the main one, and only logs.
    """

    def __init__(self, bootstrap: str, settings: Mapping[str, str], flush_timeout: float) -> None:
        self.bootstrap = bootstrap
        self.settings = settings
        self.flush_timeout = flush_timeout
        self.failures: list[KafkaError] = []
        self.sent = 0
        self.acked = 0
        self._producer: Producer | None = None

    def _on_delivery(self, error: KafkaError | None, _message: Any) -> None:
        self.acked += 1
        if error is not None:
            self.failures.append(error)

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = worker_producer(self.bootstrap, self.settings)
        return self._producer

    def produce(
        self, topics: Sequence[str], keys: Sequence[bytes | None], values: Sequence[bytes | None]
    ) -> None:
        producer = self.producer
        produce, on_delivery = producer.produce, self._on_delivery
        for topic, key, value in zip(topics, keys, values):
            while True:
                try:
                    produce(topic, value=value, key=key, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.05)
        self.sent += len(values)
        producer.poll(0)

    def _wait(self, timeout: float) -> int:
        """Flush until this delivery's records are acknowledged; how many are not."""
        deadline = time.monotonic() + timeout
        while self.acked < self.sent:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.producer.flush(min(left, 0.5))
        return self.sent - self.acked

    def finish(self) -> None:
        remaining = self._wait(self.flush_timeout)
        if remaining or self.failures:
            failures = self.failures
            raise KafkaIOError(
                f"{len(failures)} records failed and {remaining} were not acknowledged within "
                f"{self.flush_timeout:.0f}s; first error: {failures[0] if failures else 'timeout'}"
            )

    def produce_shadow(
        self,
        topic: str,
        keys: Sequence[bytes | None],
        values: Sequence[bytes | None],
        patience: float = 1.0,
    ) -> list[int]:
        """Produce the non-null ``values`` to ``topic``; the positions not produced.

        Never raises and never waits long: when the producer's queue stays full for
        ``patience`` seconds (a stalled shadow topic fills it), the rest is dropped rather
        than hold up the main records queued behind it.
        """
        producer, on_delivery = self.producer, self._on_delivery
        present = [i for i, v in enumerate(values) if v is not None]
        deadline = time.monotonic() + patience
        for n, i in enumerate(present):
            try:
                while True:
                    try:
                        producer.produce(
                            topic, value=values[i], key=keys[i], on_delivery=on_delivery
                        )
                        self.sent += 1
                        break
                    except BufferError:
                        if time.monotonic() > deadline:
                            raise
                        producer.poll(0.05)
            except Exception as exc:
                log.warning(
                    'shadow records dropped topic="%s" dropped="%d" error="%s"',
                    topic,
                    len(present) - n,
                    type(exc).__name__ if isinstance(exc, BufferError) else exc,
                )
                return present[n:]
        producer.poll(0)
        return []

    def finish_shadow(self, topic: str) -> None:
        """Wait briefly for the shadow records (the main ones are already acknowledged)."""
        try:
            remaining = self._wait(min(self.flush_timeout, 5.0))
        except Exception as exc:
            log.warning('shadow delivery failed topic="%s" error="%s"', topic, exc)
            return
        if remaining or self.failures:
            log.warning(
                'shadow records lost topic="%s" failed="%d" unacknowledged="%d" first_error="%s"',
                topic,
                len(self.failures),
                remaining,
                self.failures[0] if self.failures else "timeout",
            )
