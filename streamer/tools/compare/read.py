"""Both output topics, read from their earliest offsets to the ends they had at the start."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from streamer.errors import KafkaIOError, MissingTopicError
from streamer.kafka.admin import OffsetProbe
from streamer.kafka.io import NotAtEnd, read_to_end, where
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
    from streamer.kafka.probe import resolve_end_offsets

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
    expected = sum(end - start for start, end in ranges.values())
    left = max(0.0, deadline - time.monotonic())
    read = 0
    try:
        for message in read_to_end(bootstrap_servers, client, ranges=ranges, timeout=left):
            topic, partition, offset = where(message)
            sides[topic].add(message.value(), partition, offset)
            read += 1
    except NotAtEnd as exc:
        raise CompareError(
            f"read {read} of about {expected} records within --timeout {timeout:g}s; "
            f"unfinished partitions: {exc.pending}. Raise --timeout"
        ) from exc
    except KafkaIOError as exc:
        raise CompareError(f"cannot read from Kafka: {exc}") from exc
    return sides[live_topic], sides[shadow_topic]
