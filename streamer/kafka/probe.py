"""The driver's look at the input topic: where its partitions start and end, and a sample
of its most recent records."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from streamer.config import KafkaConfig
from streamer.kafka.admin import OffsetProbe, cluster_id, is_tansu
from streamer.kafka.io import NotAtEnd, read_to_end


def resolve_end_offsets(choice: str, bootstrap_servers: str, client: Mapping[str, Any]) -> str:
    """``auto`` → ``fetch`` on tansu (its ListOffsets bug), ``list`` elsewhere."""
    if choice != "auto":
        return choice
    return "fetch" if is_tansu(cluster_id(bootstrap_servers, client)) else "list"


def offset_probe(kafka: KafkaConfig) -> OffsetProbe:
    """A probe for the configured cluster, with the end-offset strategy resolved."""
    strategy = resolve_end_offsets(kafka.end_offsets, kafka.bootstrap_servers, kafka.client)
    return OffsetProbe(kafka.bootstrap_servers, kafka.client, strategy)


def topic_ends(
    bootstrap_servers: str,
    client: Mapping[str, Any],
    topics: Iterable[str],
    end_offsets: str = "auto",
) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]:
    """Earliest and latest offsets of every partition of ``topics``; ``end_offsets`` as
    ``kafka.end_offsets`` (``auto``: fetch on tansu, ListOffsets elsewhere)."""
    strategy = resolve_end_offsets(end_offsets, bootstrap_servers, client)
    probe = OffsetProbe(bootstrap_servers, client, strategy)
    try:
        tps = probe.partitions(topics)
        return probe.earliest(tps), probe.latest(tps)
    finally:
        probe.close()


def broker_ends(
    kafka: KafkaConfig,
) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]:
    """Earliest and latest offsets of every partition of the input topic."""
    return topic_ends(kafka.bootstrap_servers, kafka.client, [kafka.input_topic], kafka.end_offsets)


def recent_values(kafka: KafkaConfig, rows: int, timeout: float = 15.0) -> list[bytes | None]:
    """About ``rows`` of the input topic's most recent record values (driver side), spread
    over its partitions; fewer when the topic holds fewer, or when they cannot all be read
    within ``timeout``. Used to vet a new model version on the events it will see."""
    earliest, latest = broker_ends(kafka)
    per_partition = max(1, rows // max(1, len(latest)))
    wanted = {
        tp: (max(earliest.get(tp, 0), end - per_partition), end)
        for tp, end in latest.items()
        if end > earliest.get(tp, 0)
    }
    values: list[bytes | None] = []
    if not wanted:
        return values
    read = read_to_end(kafka.bootstrap_servers, kafka.client, ranges=wanted, timeout=timeout)
    with contextlib.suppress(NotAtEnd):
        for message in read:
            values.append(message.value())
    return values
