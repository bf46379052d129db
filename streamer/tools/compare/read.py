"""Both output topics, read from their earliest offsets to the ends they had at the start."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from streamer.errors import MissingTopicError
from streamer.kafka.admin import OffsetProbe, client_config
from streamer.tools.compare.stats import CompareError, Side

log = logging.getLogger(__name__)


def read_sides(
    bootstrap_servers: str,
    client: Mapping[str, Any],
    live_topic: str,
    shadow_topic: str,
    *,
    end_offsets: str = "list",
    timeout: float = 120.0,
) -> tuple[Side, Side]:
    """Both topics from their earliest offsets to the ends they had when this started.

    Raises :class:`CompareError` when a topic does not exist, is empty, or cannot be read
    to its end within ``timeout`` seconds.
    """
    from streamer.kafka.backend import resolve_end_offsets

    deadline = time.monotonic() + timeout
    strategy = resolve_end_offsets(end_offsets, bootstrap_servers, client)
    probe = OffsetProbe(bootstrap_servers, client, strategy, timeout=timeout)
    try:
        ranges: dict[tuple[str, int], tuple[int, int]] = {}
        for role, topic in (("live", live_topic), ("shadow", shadow_topic)):
            try:
                tps = probe.partitions([topic])
            except MissingTopicError as exc:
                raise CompareError(
                    f"the {role} topic {topic!r} does not exist on {bootstrap_servers}"
                ) from exc
            starts, ends = probe.earliest(tps), probe.latest(tps)
            if all(ends[tp] <= starts[tp] for tp in tps):
                raise CompareError(f"the {role} topic {topic!r} is empty: nothing to compare")
            ranges.update({tp: (starts[tp], ends[tp]) for tp in tps if ends[tp] > starts[tp]})
    finally:
        probe.close()
    sides = {live_topic: Side(live_topic), shadow_topic: Side(shadow_topic)}
    log.info(
        'compare reading topics="%s,%s" records="%d"',
        live_topic,
        shadow_topic,
        sum(end - start for start, end in ranges.values()),
    )
    consumer = Consumer(
        client_config(
            bootstrap_servers,
            client,
            group_id="streamer-compare",
            enable_auto_commit=False,
            enable_auto_offset_store=False,
            enable_partition_eof=True,
            auto_offset_reset="earliest",
        )
    )
    try:
        _read(consumer, ranges, sides, deadline, timeout)
    finally:
        consumer.close()
    return sides[live_topic], sides[shadow_topic]


def _read(
    consumer: Consumer,
    ranges: Mapping[tuple[str, int], tuple[int, int]],
    sides: Mapping[str, Side],
    deadline: float,
    timeout: float,
) -> None:
    """Consume every partition in ``ranges`` from start to end (exclusive) into its side.

    A partition is done at its last offset before the end, or at end-of-partition at or
    past the end (offsets can have gaps: transaction markers, compaction)."""
    pending = dict(ranges)
    consumer.assign([TopicPartition(t, p, start) for (t, p), (start, _) in ranges.items()])
    read = 0
    while pending:
        if time.monotonic() > deadline:
            expected = sum(end - start for start, end in ranges.values())
            raise CompareError(
                f"read {read} of about {expected} records within --timeout {timeout:g}s; "
                f"unfinished partitions: {sorted(pending)}. Raise --timeout"
            )
        try:
            messages = consumer.consume(10_000, timeout=0.2)
        except KafkaException as exc:
            raise CompareError(f"cannot read from Kafka: {exc}") from exc
        done: list[tuple[str, int]] = []
        for message in messages:
            tp = (str(message.topic()), int(message.partition()))  # type: ignore[arg-type]
            if tp not in pending:
                continue
            offset = int(message.offset())  # type: ignore[arg-type]
            end = pending[tp][1]
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    if offset >= end:
                        done.append(tp)
                elif not error.retriable():
                    raise CompareError(f"reading {tp[0]}[{tp[1]}]: {error}")
                continue
            if offset < end:
                sides[tp[0]].add(message.value(), tp[1], offset)
                read += 1
            if offset + 1 >= end:
                done.append(tp)
        for tp in done:
            pending.pop(tp, None)
        if done:
            consumer.pause([TopicPartition(t, p) for t, p in done])
