"""Durable offset stores: where the service's position lives between runs.

One small protocol, three implementations chosen by ``offsets.store``:

* ``file``: a local directory of numbered generations, each written atomically (temp file,
  fsync, rename, fsync of the directory). The last ``offsets.keep`` generations are kept, so
  a torn or corrupt newest file falls back to the one before it, with a warning.
* ``s3``: the same generations as objects under ``s3://bucket/prefix`` (a PUT is atomic).
* ``kafka-group``: offsets committed to a consumer group without joining it, so lag tools
  (``kafka-consumer-groups``, Burrow, exporters) see the service's position.

With ``offsets.group_id`` set next to ``file`` or ``s3``, the group is a secondary sink: it is
written after the primary, and never read at start-up.

A stored document::

    {"format": 1, "offsets": {"topic": {"0": 42}}, "batch_id": 7,
     "writer": "streamer-1a2b3c4d", "written_at": 1764000000000}
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from streamer.config import Config, KafkaConfig, OffsetsConfig
from streamer.docstore import FileFolder, Folder, S3Folder, s3_client, split_s3_url
from streamer.errors import OffsetsError
from streamer.offsets.core import Offsets, format_offsets, parse_offsets

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_GENERATION = re.compile(r"^offsets-(\d{12})\.json$")


@dataclass(frozen=True)
class StoredOffsets:
    """One readable generation: the offsets and who wrote them when."""

    offsets: Offsets
    batch_id: int | None = None
    writer: str | None = None
    written_at: int | None = None
    generation: str | None = None


class OffsetStore(Protocol):
    kind: str
    description: str

    def load(self) -> StoredOffsets | None:
        """The newest readable offsets; ``None`` when nothing was ever stored.

        Raises :class:`OffsetsError` when something is stored but none of it is readable.
        """
        ...

    def save(
        self, offsets: Offsets, *, batch_id: int | None = None, writer: str | None = None
    ) -> None: ...

    def close(self) -> None: ...


def encode(offsets: Offsets, batch_id: int | None, writer: str | None) -> bytes:
    document = {
        "format": FORMAT_VERSION,
        "offsets": json.loads(format_offsets(offsets)),
        "batch_id": batch_id,
        "writer": writer,
        "written_at": int(time.time() * 1000),
    }
    return json.dumps(document, separators=(",", ":")).encode()


def decode(data: bytes, generation: str | None = None) -> StoredOffsets:
    """Parse a stored document; any defect raises :class:`OffsetsError`."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise OffsetsError(f"not JSON ({exc})") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT_VERSION:
        raise OffsetsError(f"not a format-{FORMAT_VERSION} offsets document")
    offsets = parse_offsets(json.dumps(document.get("offsets")))
    if any(o < 0 for partitions in offsets.values() for o in partitions.values()):
        raise OffsetsError("holds a negative offset")
    return StoredOffsets(
        offsets=offsets,
        batch_id=document.get("batch_id"),
        writer=document.get("writer"),
        written_at=document.get("written_at"),
        generation=generation,
    )


class GenerationStore:
    """Numbered generations of the offsets document in a folder (a directory or S3 prefix).

    Each save writes the next generation whole (see :mod:`streamer.docstore`), then prunes
    all but the newest ``keep``.
    """

    kind = ""

    def __init__(self, folder: Folder, keep: int) -> None:
        if keep < 1:
            raise OffsetsError(f"offsets.keep = {keep}: keep at least one generation")
        self.folder = folder
        self.description = folder.description
        self.keep = keep
        self._next: int | None = None

    def _generations(self) -> list[tuple[int, str]]:
        try:
            names = self.folder.names("offsets-")
        except Exception as exc:
            raise OffsetsError(f"cannot list offset store {self.description}: {exc}") from exc
        found = ((_GENERATION.match(n), n) for n in names)
        return sorted((int(m[1]), n) for m, n in found if m)

    def _read(self, name: str) -> StoredOffsets:
        found = self.folder.document(name).read()
        if found is None:
            raise OffsetsError("gone (pruned meanwhile)")
        return decode(found[0], generation=name)

    def load(self) -> StoredOffsets | None:
        generations = self._generations()
        if generations:
            self._next = generations[-1][0] + 1
        problems = []
        for _, name in reversed(generations):
            try:
                stored = self._read(name)
            except Exception as exc:  # unreadable, torn, or gone
                problems.append(f"{name}: {exc}")
                log.warning(
                    'offsets generation unreadable, falling back store="%s" generation="%s" '
                    'error="%s"',
                    self.description,
                    name,
                    exc,
                )
                continue
            if problems:
                log.warning(
                    'offsets loaded from an older generation store="%s" generation="%s" '
                    'skipped="%d"',
                    self.description,
                    name,
                    len(problems),
                )
            return stored
        if problems:
            raise OffsetsError(
                f"offset store {self.description} holds {len(problems)} generations and none "
                f"is readable ({'; '.join(problems[:3])}). Inspect it with `streamer offsets "
                "show`, or start with --reset-offsets earliest|latest|<json>"
            )
        return None

    def save(
        self, offsets: Offsets, *, batch_id: int | None = None, writer: str | None = None
    ) -> None:
        if self._next is None:
            generations = self._generations()
            self._next = generations[-1][0] + 1 if generations else 0
        name = f"offsets-{self._next:012d}.json"
        try:
            self.folder.document(name).put(encode(offsets, batch_id, writer))
        except Exception as exc:
            raise OffsetsError(f"cannot write {name} to {self.description}: {exc}") from exc
        self._next += 1
        try:
            for _, old in self._generations()[: -self.keep]:
                self.folder.document(old).delete()
        except Exception as exc:  # the new generation is durable; pruning is housekeeping
            log.warning(
                'old offsets generations not pruned store="%s" error="%s"', self.description, exc
            )

    def close(self) -> None:
        pass


class FileStore(GenerationStore):
    """Generations in a local directory."""

    kind = "file"

    def __init__(self, path: str | os.PathLike[str], keep: int = 5) -> None:
        self.path = Path(path)
        super().__init__(FileFolder(self.path), keep)


class S3Store(GenerationStore):
    """Generations as objects under ``s3://bucket/prefix`` (boto3; for EMR)."""

    kind = "s3"

    def __init__(self, url: str, keep: int = 5, client: Mapping[str, Any] | None = None) -> None:
        location = split_s3_url(url)
        if location is None:
            raise OffsetsError(f"offsets.path = {url!r}: expected s3://bucket/prefix")
        super().__init__(S3Folder(s3_client(client), *location), keep)


class KafkaGroupStore:
    """Offsets committed to a consumer group, without joining it.

    The consumer never subscribes, so no rebalance happens and the group shows no members;
    ``kafka-consumer-groups --describe`` still lists its committed offsets and lag. Brokers
    expire the offsets of a member-less group after ``offsets.retention.minutes`` (7 days by
    default) without commits, so as the primary store it suits streams that never idle
    that long; as a secondary it is for visibility only.
    """

    kind = "kafka-group"

    def __init__(
        self,
        group_id: str,
        bootstrap_servers: str,
        client: Mapping[str, Any],
        topics: Sequence[str],
        timeout: float = 15.0,
    ) -> None:
        from confluent_kafka import Consumer

        from streamer.kafka.admin import client_config

        self.group_id = group_id
        self.topics = list(topics)
        self.timeout = timeout
        self.description = f"kafka-group:{group_id}"
        self._commits: list[tuple[Any, Any]] = []
        conf = client_config(
            bootstrap_servers,
            client,
            group_id=group_id,
            enable_auto_commit=False,
            enable_auto_offset_store=False,
        )
        conf["on_commit"] = lambda error, partitions: self._commits.append((error, partitions))
        self._consumer = Consumer(conf)

    def load(self) -> StoredOffsets | None:
        from confluent_kafka import KafkaException, TopicPartition

        try:
            metadata = self._consumer.list_topics(timeout=self.timeout)
            wanted = [
                TopicPartition(t, p)
                for t in self.topics
                if t in metadata.topics
                for p in sorted(metadata.topics[t].partitions)
            ]
            committed = self._consumer.committed(wanted, timeout=self.timeout) if wanted else []
        except KafkaException as exc:
            raise OffsetsError(
                f"cannot read the committed offsets of group {self.group_id!r}: {exc}"
            ) from exc
        offsets: Offsets = {}
        for tp in committed:
            if tp.error is None and tp.offset >= 0:
                offsets.setdefault(tp.topic, {})[tp.partition] = tp.offset
        return StoredOffsets(offsets=offsets) if offsets else None

    def save(
        self, offsets: Offsets, *, batch_id: int | None = None, writer: str | None = None
    ) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        tps = [TopicPartition(t, p, o) for t, ps in offsets.items() for p, o in ps.items()]
        if not tps:
            return
        # Asynchronous, with a bounded wait: a synchronous commit blocks for as long as the
        # group coordinator is unreachable, and with it the listener thread and shutdown.
        self._commits.clear()
        try:
            self._consumer.commit(offsets=tps, asynchronous=True)
        except KafkaException as exc:
            raise OffsetsError(f"commit to group {self.group_id!r} failed: {exc}") from exc
        deadline = time.monotonic() + self.timeout
        while not self._commits:
            if time.monotonic() > deadline:
                raise OffsetsError(
                    f"commit to group {self.group_id!r} not acknowledged within {self.timeout:.0f}s"
                )
            self._consumer.poll(0.05)
        error, partitions = self._commits[-1]
        failed = [tp for tp in partitions or [] if tp.error is not None]
        if error is not None or failed:
            raise OffsetsError(f"commit to group {self.group_id!r} failed: {error or failed}")

    def close(self) -> None:
        self._consumer.close()


class SecondaryStoreError(OffsetsError):
    """The primary store saved; a secondary (visibility only) did not."""

    def __init__(self, message: str, kinds: list[str]) -> None:
        super().__init__(message)
        self.kinds = kinds


class MirroredStore:
    """A primary store plus secondaries written after it (never read at start-up)."""

    def __init__(self, primary: OffsetStore, secondaries: Sequence[OffsetStore]) -> None:
        self.primary = primary
        self.secondaries = list(secondaries)
        self.description = " + ".join(s.description for s in [primary, *self.secondaries])
        self.kind = primary.kind

    def load(self) -> StoredOffsets | None:
        return self.primary.load()

    def save(
        self, offsets: Offsets, *, batch_id: int | None = None, writer: str | None = None
    ) -> None:
        self.primary.save(offsets, batch_id=batch_id, writer=writer)
        errors, kinds = [], []
        for store in self.secondaries:
            try:
                store.save(offsets, batch_id=batch_id, writer=writer)
            except Exception as exc:
                errors.append(f"{store.description}: {exc}")
                kinds.append(store.kind)
        if errors:
            raise SecondaryStoreError(
                f"primary saved, secondary failed: {'; '.join(errors)}", kinds
            )

    def close(self) -> None:
        for store in [self.primary, *self.secondaries]:
            store.close()


def open_store(offsets: OffsetsConfig, kafka: KafkaConfig) -> OffsetStore:
    """The store ``offsets.store`` names, for ``kafka.input_topic``, mirrored to
    ``offsets.group_id`` when that is set."""

    def group() -> KafkaGroupStore:
        assert offsets.group_id
        return KafkaGroupStore(
            offsets.group_id, kafka.bootstrap_servers, kafka.client, [kafka.input_topic]
        )

    primary: OffsetStore
    if offsets.store == "file":
        primary = FileStore(offsets.path, offsets.keep)
    elif offsets.store == "s3":
        primary = S3Store(offsets.path, offsets.keep, offsets.s3_client)
    elif offsets.store == "kafka-group":
        if not offsets.group_id:
            raise OffsetsError("offsets.store = 'kafka-group' needs offsets.group_id")
        return group()
    else:
        raise OffsetsError(f"offsets.store = {offsets.store!r}: expected file, s3 or kafka-group")
    return MirroredStore(primary, [group()]) if offsets.group_id else primary


def store_for(config: Config) -> OffsetStore:
    """The offset store a config names, for its input topic."""
    return open_store(config.offsets, config.kafka)
