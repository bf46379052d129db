"""The ``python`` Kafka backend: a Spark Python Data Source on confluent-kafka.

Reader (``spark.readStream.format("streamer_kafka")``):

- Offsets are ``{"topic": {"partition": next_offset}}``, the same JSON the JVM source uses,
  so a listener's ``progress.sources[i].endOffset`` can be stored and fed back verbatim.
- The driver-side methods (``initialOffset``, ``latestOffset``, ``partitions``) run in one
  long-lived Python process and keep one :class:`~streamer.kafka.admin.OffsetProbe` open.
  ``read`` runs in Python workers on a pickled copy, with no client in the pickle, and
  reuses one consumer per worker process (:mod:`.pyworker`). Consumers use ``assign``,
  never a group.
- One input partition per Kafka partition and offset range; ``read`` yields
  ``pyarrow.RecordBatch``es whose schema is exactly Spark's Arrow form of
  :data:`SOURCE_SCHEMA`.
- ``maxOffsetsPerTrigger`` caps a micro-batch (spread over partitions in proportion to
  their backlog); ``Trigger.AvailableNow`` is honoured.
- Partitions that appear while running start at their earliest offset.
- With the ``scorer`` option (a pickled :class:`RecordScorer`, see
  :func:`scorer_option`), ``read`` scores each chunk of records as it reads them and
  yields the scorer's output columns instead of the raw records. With ``produce`` also
  ``true`` it produces each scored record (``topic``, ``key``, ``value``) itself, with the
  sink's producer and the sink's guarantee (the task ends only once every record is
  acknowledged), and yields the other columns with null key and value, for a ``noop``
  sink: no record then crosses between Python and the JVM (the fused path).

Writer: rows ``(topic, key, value)`` are produced with one producer per Python worker. A
task returns only after every record is acknowledged, so a micro-batch commits only when
its output is in Kafka (at-least-once).

Options: ``kafka.<setting>`` (any librdkafka setting, e.g. ``kafka.bootstrap.servers``,
``kafka.security.protocol``), ``subscribe``, ``startingOffsets`` (``earliest``, ``latest``
or JSON; ``-2``/``-1`` per partition mean earliest/latest), ``startingOffsetsDefault``
(where partitions missing from the JSON begin), ``maxOffsetsPerTrigger``, ``fenceFile``
(once this file exists the reader admits no new offsets: a clean drain), ``endOffsets``
(``list`` or ``fetch``, see :class:`~streamer.kafka.admin.OffsetProbe`),
``pollTimeoutMs``, ``outageToleranceMs`` (how long an unreachable broker only pauses the
stream, default 10 min), and for the writer ``topic`` (used when a row's topic is null).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import Consumer, KafkaException
from pyspark import cloudpickle
from pyspark.sql.datasource import (
    DataSource,
    DataSourceStreamArrowWriter,
    DataSourceStreamReader,
    InputPartition,
    WriterCommitMessage,
)
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    ReadMaxRows,
    SupportsTriggerAvailableNow,
)
from pyspark.sql.types import (
    BinaryType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from streamer.errors import KafkaIOError, MissingTopicError
from streamer.kafka.admin import OffsetProbe
from streamer.kafka.pyworker import (
    Delivery,
    KafkaInputPartition,
    read_chunks,
    worker_consumer,
)
from streamer.scoring.chunk import Chunk

log = logging.getLogger(__name__)

FORMAT = "streamer_kafka"  # = PythonKafkaBackend.format

SOURCE_SCHEMA = StructType(
    [
        StructField("key", BinaryType()),
        StructField("value", BinaryType()),
        StructField("topic", StringType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("timestamp", TimestampType()),
    ]
)
ARROW_SCHEMA = to_arrow_schema(SOURCE_SCHEMA, timezone="UTC")


class RecordScorer(Protocol):
    """What the reader's ``scorer`` option holds (e.g. :class:`streamer.scoring.scorer.Scorer`)."""

    output_type: StructType
    shadow_topic: str | None
    """Where the ``shadow_value`` column goes, or None without a shadow model."""

    def score(self, chunk: Chunk) -> dict[str, Any]:
        """Columns of ``output_type`` for one chunk."""
        ...


def scorer_option(scorer: RecordScorer) -> str:
    """The ``scorer`` option's value: the pickled scorer, base64."""
    return base64.b64encode(cloudpickle.dumps(scorer)).decode("ascii")


def _load_scorer(options: Mapping[str, str]) -> RecordScorer | None:
    value = options.get("scorer")
    return cloudpickle.loads(base64.b64decode(value)) if value else None


TP = tuple[str, int]


def kafka_settings(options: Mapping[str, str]) -> dict[str, str]:
    """The ``kafka.*`` options with the prefix removed, as librdkafka settings."""
    return {k[len("kafka.") :]: v for k, v in options.items() if k.lower().startswith("kafka.")}


def _flatten(offsets: Mapping[str, Mapping[str, int]] | None) -> dict[TP, int]:
    return {(t, int(p)): int(o) for t, ps in (offsets or {}).items() for p, o in ps.items()}


def _nest(offsets: Mapping[TP, int]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (t, p), o in sorted(offsets.items()):
        out.setdefault(t, {})[str(p)] = int(o)
    return out


def spread_limit(available: Mapping[TP, int], limit: int) -> dict[TP, int]:
    """Split ``limit`` rows over partitions in proportion to their backlog.

    Every partition with a backlog gets at least one row when the limit allows, so none
    starves; the total never exceeds ``limit`` nor any partition's backlog.
    """
    total = sum(available.values())
    if total <= limit:
        return dict(available)
    busy = [tp for tp, n in available.items() if n > 0]
    floor = 1 if limit >= len(busy) else 0
    rest = limit - floor * len(busy)
    share = {tp: min(n, (floor if n else 0) + rest * n // total) for tp, n in available.items()}
    spare = limit - sum(share.values())
    for tp in sorted(available, key=lambda tp: available[tp] - share[tp], reverse=True):
        if spare <= 0:
            break
        if share[tp] < available[tp]:
            share[tp] += 1
            spare -= 1
    return share


@dataclass(frozen=True)
class WriteReport(WriterCommitMessage):
    records: int


class KafkaDataSource(DataSource):
    """Kafka as a Spark streaming source and sink, on confluent-kafka."""

    @classmethod
    def name(cls) -> str:
        return FORMAT

    def schema(self) -> StructType:
        scorer = _load_scorer(self.options)
        return scorer.output_type if scorer is not None else SOURCE_SCHEMA

    def streamReader(self, schema: StructType) -> KafkaStreamReader:
        return KafkaStreamReader(self.options)

    def streamWriter(self, schema: StructType, overwrite: bool) -> KafkaStreamWriter:
        return KafkaStreamWriter(self.options)


def _required(options: Mapping[str, str], key: str) -> str:
    value = options.get(key)
    if not value:
        raise KafkaIOError(f"the {FORMAT} data source needs the option {key!r}")
    return value


class KafkaStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    def __init__(self, options: Mapping[str, str]) -> None:
        self.settings = kafka_settings(options)
        self.bootstrap = _required(options, "kafka.bootstrap.servers")
        self.topics = [t.strip() for t in _required(options, "subscribe").split(",") if t.strip()]
        self.starting = options.get("startingOffsets") or "earliest"
        self.starting_default = options.get("startingOffsetsDefault") or "earliest"
        limit = options.get("maxOffsetsPerTrigger")
        self.max_offsets = int(limit) if limit else None
        self.end_strategy = options.get("endOffsets") or "list"
        self.poll_timeout = int(options.get("pollTimeoutMs") or 120_000) / 1000.0
        self.fence_file = options.get("fenceFile") or None
        self.outage_tolerance = int(options.get("outageToleranceMs") or 600_000) / 1000.0
        self.scorer = _load_scorer(options)
        self.produce = (options.get("produce") or "false").lower() == "true"
        self.flush_timeout = int(options.get("flushTimeoutMs") or 120_000) / 1000.0
        self._unreachable_since: float | None = None
        self._fenced = False
        self._probe: OffsetProbe | None = None
        self._target: dict[TP, int] | None = None
        self._new_starts: dict[TP, int] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_probe"] = None
        return state

    @property
    def probe(self) -> OffsetProbe:
        if self._probe is None:
            self._probe = OffsetProbe(self.bootstrap, self.settings, self.end_strategy)
        return self._probe

    def initialOffset(self) -> dict:
        tps = self.probe.partitions(self.topics)
        if self.starting in ("earliest", "latest"):
            explicit: dict[TP, int] = {}
            default = self.starting
        else:
            try:
                explicit = _flatten(json.loads(self.starting))
            except (ValueError, AttributeError) as exc:
                raise KafkaIOError(f"startingOffsets is not valid JSON: {self.starting!r}") from exc
            default = self.starting_default
        earliest = self.probe.earliest(tps)
        latest = (
            self.probe.latest(tps)
            if "latest" in (default, self.starting) or -1 in (explicit.values())
            else {}
        )
        start: dict[TP, int] = {}
        for tp in tps:
            offset = explicit.get(tp)
            if offset is None:
                offset = -2 if default == "earliest" else -1
            if offset == -2:
                start[tp] = earliest[tp]
            elif offset == -1:
                start[tp] = latest[tp]
            elif offset < earliest[tp]:
                log.warning(
                    'start offset below earliest, records lost to retention topic="%s" '
                    'partition="%d" start="%d" earliest="%d"',
                    tp[0],
                    tp[1],
                    offset,
                    earliest[tp],
                )
                start[tp] = earliest[tp]
            else:
                start[tp] = offset
        log.info('source initial offsets offsets="%s"', json.dumps(_nest(start)))
        return _nest(start)

    def getDefaultReadLimit(self) -> ReadLimit:
        return ReadMaxRows(self.max_offsets) if self.max_offsets else ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:
        self._target = self.probe.latest(self.probe.partitions(self.topics))

    def _fence(self, start: dict) -> bool:
        """Once the fence file exists, admit no new offsets and acknowledge where we stopped.

        ``latestOffset`` is only called between micro-batches, so ``start`` is then the end of
        the last batch, whose sink commit is done: nothing is in flight.
        """
        if not self.fence_file or not os.path.exists(self.fence_file):
            return False
        if not self._fenced:
            self._fenced = True
            log.info('source fenced, admitting no new offsets at="%s"', json.dumps(start))
            ack = self.fence_file + ".ack"
            with open(ack + ".tmp", "w") as f:
                json.dump(start, f)
            os.replace(ack + ".tmp", ack)
        return True

    def latestOffset(self, start: dict, limit: ReadLimit) -> dict:
        """The next batch's end. While the broker is unreachable, no new offsets (the query
        waits, alive) for up to ``outageToleranceMs``; after that the error fails the query."""
        if self._fence(start):
            return start
        try:
            end = self._latest(start, limit)
        except MissingTopicError:
            raise
        except (KafkaIOError, KafkaException) as exc:
            now = time.monotonic()
            if self._unreachable_since is None:
                self._unreachable_since = now
            down = now - self._unreachable_since
            if down > self.outage_tolerance:
                raise KafkaIOError(
                    f"Kafka unreachable for {down:.0f}s (outageToleranceMs "
                    f"{self.outage_tolerance * 1000:.0f}): {exc}"
                ) from exc
            log.warning('kafka unreachable, no new offsets down_s="%.0f" error="%s"', down, exc)
            return start
        if self._unreachable_since is not None:
            log.warning(
                'kafka reachable again down_s="%.0f"', time.monotonic() - self._unreachable_since
            )
            self._unreachable_since = None
        return end

    def _latest(self, start: dict, limit: ReadLimit) -> dict:
        begin = _flatten(start)
        tps = self.probe.partitions(self.topics)
        new = [tp for tp in tps if tp not in begin]
        if new:
            for tp, offset in self.probe.earliest(new).items():
                self._new_starts.setdefault(tp, offset)
                log.info('new partition topic="%s" partition="%d" start="%d"', *tp, offset)
            begin.update({tp: self._new_starts[tp] for tp in new})
        ends = self.probe.latest(tps, known=begin)
        if self._target is not None:
            ends = {tp: min(end, self._target.get(tp, begin[tp])) for tp, end in ends.items()}
        ends = {tp: max(end, begin[tp]) for tp, end in ends.items()}
        if isinstance(limit, ReadMaxRows):
            available = {tp: ends[tp] - begin[tp] for tp in tps}
            taken = spread_limit(available, int(limit.max_rows))
            ends = {tp: begin[tp] + taken[tp] for tp in tps}
        return _nest(ends)

    def partitions(self, start: dict, end: dict) -> Sequence[InputPartition]:
        begin = _flatten(start)
        out = []
        for tp, stop in sorted(_flatten(end).items()):
            first = begin.get(tp, self._new_starts.get(tp, 0))
            if stop > first:
                out.append(KafkaInputPartition(tp[0], tp[1], first, stop))
        return out

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        assert isinstance(partition, KafkaInputPartition)
        consumer = worker_consumer(self.bootstrap, self.settings)
        if self.scorer is None:
            yield from read_range(consumer, partition, self.poll_timeout)
            return
        schema = to_arrow_schema(self.scorer.output_type, timezone="UTC")
        delivery = Delivery(self.bootstrap, self.settings, self.flush_timeout)
        shadow_topic = self.scorer.shadow_topic if self.produce else None
        shadow = Delivery(self.bootstrap, self.settings, self.flush_timeout)
        for chunk in read_chunks(consumer, partition, self.poll_timeout):
            n = len(chunk)
            columns = self.scorer.score(chunk)
            if self.produce:
                delivery.produce(columns["topic"], columns["key"], columns["value"])
                if shadow_topic is not None:
                    dropped = shadow.produce_shadow(
                        shadow_topic, columns["key"], columns["shadow_value"]
                    )
                    columns["shadow_status"][dropped] = -1
                columns["key"] = columns["value"] = columns["shadow_value"] = [None] * n
            yield pa.RecordBatch.from_arrays(
                [pa.array(columns[f.name], f.type, from_pandas=True) for f in schema],
                schema=schema,
            )
        if self.produce:
            delivery.finish()
            if shadow_topic is not None:
                shadow.finish_shadow(shadow_topic)

    def commit(self, end: dict) -> None:
        """Nothing to do: positions are the listener's business, never a consumer group's."""

    def stop(self) -> None:
        if self._probe is not None:
            self._probe.close()
            self._probe = None


def read_range(
    consumer: Consumer, part: KafkaInputPartition, poll_timeout: float, batch_rows: int = 10_000
) -> Iterator[pa.RecordBatch]:
    """Records ``[part.start, part.end)`` of one partition as Arrow batches."""
    for chunk in read_chunks(consumer, part, poll_timeout, batch_rows):
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(chunk.keys, pa.binary()),
                pa.array(chunk.values, pa.binary()),
                pa.array(chunk.topics, pa.string()),
                pa.array(chunk.partitions, pa.int32()),
                pa.array(chunk.offsets, pa.int64()),
                pc.multiply(pa.array(chunk.stamps.astype("int64")), 1000).cast(
                    ARROW_SCHEMA.field("timestamp").type
                ),
            ],
            schema=ARROW_SCHEMA,
        )


class KafkaStreamWriter(DataSourceStreamArrowWriter):
    def __init__(self, options: Mapping[str, str]) -> None:
        self.settings = kafka_settings(options)
        self.bootstrap = _required(options, "kafka.bootstrap.servers")
        self.default_topic = options.get("topic")
        self.flush_timeout = int(options.get("flushTimeoutMs") or 120_000) / 1000.0

    def write(self, iterator: Iterator[pa.RecordBatch]) -> WriteReport:
        delivery = Delivery(self.bootstrap, self.settings, self.flush_timeout)
        count = 0
        for batch in iterator:
            columns = batch.to_pydict()
            n = batch.num_rows
            topics = [t or self.default_topic for t in columns.get("topic") or [None] * n]
            if None in topics:
                raise KafkaIOError("a row has no topic and the sink has no 'topic' option")
            delivery.produce(
                topics,  # type: ignore[arg-type]  # no None: checked above
                columns.get("key") or [None] * n,
                columns["value"],
            )
            count += n
        delivery.finish()
        return WriteReport(count)

    def commit(self, messages: list[WriterCommitMessage | None], batchId: int) -> None:
        """Records are already acknowledged by the brokers when a task returns."""

    def abort(self, messages: list[WriterCommitMessage | None], batchId: int) -> None:
        log.warning('sink batch aborted batch_id="%d"; Spark will retry it', batchId)
