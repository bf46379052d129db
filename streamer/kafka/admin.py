"""Thin helpers over confluent-kafka's admin and consumer APIs.

Client settings are merged as ``{**defaults, **user, **required}``: the user's
``kafka.client`` (SASL, SSL ..., in the Java client's names) is translated to librdkafka's
by :func:`streamer.kafka.dialect.to_librdkafka`, and what streamer needs to be correct
cannot be overridden.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streamer.errors import KafkaIOError, MissingTopicError
from streamer.kafka.dialect import to_librdkafka
from streamer.secrets import mask_mapping

log = logging.getLogger(__name__)



def loggable(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A copy safe to log: values of secret settings masked, by the one policy in
    :mod:`streamer.secrets` (a ``kafka.`` prefix on the names changes nothing)."""
    return mask_mapping(settings)


def client_config(
    bootstrap_servers: str,
    client: Mapping[str, Any],
    defaults: Mapping[str, Any] | None = None,
    **required: Any,
) -> dict[str, Any]:
    """``{**defaults, **to_librdkafka(client), "bootstrap.servers": ..., **required}``: the
    one builder of confluent-kafka settings. ``client`` is ``kafka.client`` (Java client
    names, translated here); ``defaults`` and ``required`` are streamer's own tuning and
    guarantees, in librdkafka names (``required`` as keywords, ``_`` for ``.``)."""
    conf: dict[str, Any] = {**(defaults or {}), **to_librdkafka(client)}
    conf["bootstrap.servers"] = bootstrap_servers
    conf.update({k.replace("_", "."): v for k, v in required.items()})
    return conf


def admin_client(bootstrap_servers: str, client: Mapping[str, Any]) -> AdminClient:
    return AdminClient(client_config(bootstrap_servers, client))


def create_topics(
    bootstrap_servers: str,
    client: Mapping[str, Any],
    topics: Mapping[str, int] | Iterable[str],
    *,
    timeout: float = 30.0,
) -> None:
    """Create topics (name → partitions); existing ones are left alone. Waits for metadata."""
    wanted = dict(topics) if isinstance(topics, Mapping) else {t: 1 for t in topics}
    admin = admin_client(bootstrap_servers, client)
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=n, replication_factor=1) for name, n in wanted.items()],
        operation_timeout=timeout,
    )
    for name, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise KafkaIOError(f"cannot create topic {name!r}: {exc}") from exc
    deadline = time.monotonic() + timeout
    while True:
        known = admin.list_topics(timeout=timeout).topics
        if all(name in known and not known[name].error for name in wanted):
            return
        if time.monotonic() > deadline:
            raise KafkaIOError(f"topics {sorted(wanted)} not visible after {timeout:.0f}s")
        time.sleep(0.1)


def topic_partitions(
    bootstrap_servers: str, client: Mapping[str, Any], topics: Iterable[str], timeout: float = 15.0
) -> dict[str, list[int]]:
    """Partition ids per topic; raises :class:`KafkaIOError` for a missing topic."""
    metadata = admin_client(bootstrap_servers, client).list_topics(timeout=timeout)
    out = {}
    for topic in topics:
        info = metadata.topics.get(topic)
        if info is None or info.error is not None:
            raise KafkaIOError(f"topic {topic!r} does not exist on {bootstrap_servers}")
        out[topic] = sorted(info.partitions)
    return out


def cluster_id(bootstrap_servers: str, client: Mapping[str, Any], timeout: float = 15.0) -> str:
    try:
        return admin_client(bootstrap_servers, client).list_topics(timeout=timeout).cluster_id or ""
    except KafkaException as exc:
        raise KafkaIOError(f"cannot reach Kafka at {bootstrap_servers}: {exc}") from exc


def is_tansu(cluster: str) -> bool:
    """tansu (the embedded test broker) reports its cluster id, ``tansu_cluster`` by default."""
    return "tansu" in cluster.lower()


class OffsetProbe:
    """Finds partition ends and starts with one long-lived, group-less consumer.

    ``list`` asks ListOffsets, which is right on Apache Kafka. ``fetch`` also fetches from
    the listed end and takes the high watermark of the first fetch response that answers
    for each partition: tansu 0.6 answers ListOffsets(latest) with the first offset of the
    last record batch + 1, so the listed end can sit inside the newest batch, while fetch
    responses carry the true high watermark (the client caches it per partition). A
    response with no records arrives as end-of-partition (``enable.partition.eof``). With
    a 5 ms fetch wait, the probe costs about one fetch round trip per trigger. It does not
    wait for end-of-partition when records are there: under steady production that event
    may not come for seconds (measured: up to 11 s per trigger at 1,000 events/s).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        client: Mapping[str, Any],
        strategy: str,
        timeout: float = 15.0,
    ) -> None:
        if strategy not in ("list", "fetch"):
            raise KafkaIOError(f"end-offset strategy must be list or fetch, not {strategy!r}")
        self.strategy = strategy
        self.timeout = timeout
        self._consumer = Consumer(
            client_config(
                bootstrap_servers,
                client,
                defaults={"fetch.wait.max.ms": 5, "socket.keepalive.enable": True},
                group_id="streamer-offset-probe",
                enable_auto_commit=False,
                enable_auto_offset_store=False,
                enable_partition_eof=True,
            )
        )

    def partitions(self, topics: Iterable[str]) -> list[tuple[str, int]]:
        try:
            metadata = self._consumer.list_topics(timeout=self.timeout)
        except KafkaException as exc:
            raise KafkaIOError(f"cannot list topics: {exc}") from exc
        out: list[tuple[str, int]] = []
        for topic in topics:
            info = metadata.topics.get(topic)
            if info is None or info.error is not None:
                raise MissingTopicError(f"topic {topic!r} does not exist")
            out.extend((topic, p) for p in sorted(info.partitions))
        return out

    def _watermarks(self, tps: list[tuple[str, int]]) -> dict[tuple[str, int], tuple[int, int]]:
        try:
            return {
                tp: self._consumer.get_watermark_offsets(
                    TopicPartition(*tp), timeout=self.timeout, cached=False
                )
                for tp in tps
            }
        except KafkaException as exc:
            raise KafkaIOError(f"cannot list offsets: {exc}") from exc

    def earliest(self, tps: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        return {tp: low for tp, (low, _) in self._watermarks(tps).items()}

    def latest(
        self,
        tps: list[tuple[str, int]],
        known: Mapping[tuple[str, int], int] | None = None,
    ) -> dict[tuple[str, int], int]:
        """The end of each partition. With ``fetch`` and ``known`` (ends found before), a
        partition whose listed end has moved past its known end takes the listed end, and
        only the others are fetched: under steady production the tail of the newest batch
        is then read one trigger later, and no trigger waits on a fetch; once a partition
        stops moving, the fetch finds its true end."""
        listed = {tp: high for tp, (_, high) in self._watermarks(tps).items()}
        if self.strategy == "list" or not tps:
            return listed
        if known is None:
            return self._read_to_eof(listed)
        still = {tp: end for tp, end in listed.items() if end <= known.get(tp, end)}
        return {**listed, **(self._read_to_eof(still) if still else {})}

    def _read_to_eof(self, listed: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        ends = dict(listed)
        pending = set(listed)
        self._consumer.assign([TopicPartition(t, p, o) for (t, p), o in listed.items()])
        deadline = time.monotonic() + self.timeout
        try:
            while pending:
                if time.monotonic() > deadline:
                    raise KafkaIOError(
                        f"no end-of-partition from the broker within {self.timeout:.0f}s for "
                        f"{sorted(pending)}"
                    )
                answered = set()
                # consume() waits out its timeout unless 10,000 records come: keep it short.
                for message in self._consumer.consume(10_000, timeout=0.005):
                    tp = (str(message.topic()), int(message.partition()))  # type: ignore[arg-type]
                    offset = int(message.offset())  # type: ignore[arg-type]
                    error = message.error()
                    if error is None:
                        ends[tp] = max(ends[tp], offset + 1)
                        answered.add(tp)
                    elif error.code() == KafkaError._PARTITION_EOF:
                        ends[tp] = max(ends[tp], offset)
                        pending.discard(tp)
                    elif not error.retriable():
                        raise KafkaIOError(f"fetching {tp} for its end offset: {error}")
                for tp in answered & pending:
                    _, high = self._consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
                    ends[tp] = max(ends[tp], high)
                    pending.discard(tp)
        finally:
            self._consumer.unassign()
        return ends

    def close(self) -> None:
        self._consumer.close()
