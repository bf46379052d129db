"""Two Kafka backends behind one small interface.

``jvm`` is Spark's built-in ``kafka`` format; it needs ``spark-sql-kafka-0-10`` on the
classpath (the docker image and EMR have it). ``python`` is streamer's own Python Data
Source on confluent-kafka (:mod:`.pysource`), which runs anywhere. ``auto`` picks ``jvm``
when the connector class loads, else ``python``. Both hand the pipeline exactly
:data:`SOURCE_COLUMNS` and write rows of ``(topic, key, value)``.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from streamer.config import KafkaConfig
from streamer.errors import KafkaIOError
from streamer.kafka.admin import (
    OffsetProbe,
    client_config,
    cluster_id,
    is_tansu,
    loggable,
    topic_partitions,
)
from streamer.kafka.dialect import to_spark_options

log = logging.getLogger(__name__)

SOURCE_COLUMNS = ("key", "value", "topic", "partition", "offset", "timestamp")
CONNECTOR_CLASS = "org.apache.spark.sql.kafka010.KafkaSourceProvider"
FENCED = "streamer: the sink is fenced; this batch is left for the next owner"
"""The error a fenced jvm query ends with: a stop, not a failure (see :func:`is_fenced`)."""
BACKENDS = ("auto", "jvm", "python")

Offsets = dict[str, dict[int, int]]


class KafkaBackend(Protocol):
    name: str
    fences: bool
    """Whether the source honours ``fence_file``: once that file exists it admits no new
    offsets and writes ``<fence_file>.ack`` with where it stopped (a drain with no
    duplicates)."""
    scores_in_source: bool
    """Whether ``read_stream`` takes a ``scorer``: the source then scores and produces each
    record itself (see :mod:`streamer.kafka.pysource`), and the stream is written with
    ``write_stream(..., produced=True)``."""

    def read_stream(
        self,
        spark: SparkSession,
        *,
        topics: Sequence[str],
        start_offsets: Offsets | None,
        default_start: str = "earliest",
        max_offsets_per_trigger: int | None = None,
        fence_file: str | None = None,
        scorer: Any = None,
        produce: bool = True,
    ) -> DataFrame:
        """The source's :data:`SOURCE_COLUMNS`, or with ``scorer`` (when
        :attr:`scores_in_source`) the scorer's output columns, the records produced to
        Kafka by the source unless ``produce`` is false (a dry run)."""
        ...

    def write_stream(
        self,
        df: DataFrame,
        *,
        checkpoint_dir: str,
        trigger: str,
        query_name: str,
        available_now: bool = False,
        produced: bool = False,
        fence_file: str | None = None,
    ) -> StreamingQuery:
        """Start the sink; ``available_now`` runs what is there now and stops (warm-up).
        ``produced``: the source has written the records, the sink only drives the query.
        ``fence_file``: the same file as the source's, for a backend that fences its sink."""
        ...


def starting_offsets_json(
    start_offsets: Offsets, partitions: Mapping[str, Sequence[int]], default_start: str
) -> str:
    """Spark's ``startingOffsets`` JSON covering every partition: stored offsets where known,
    ``-2`` (earliest) or ``-1`` (latest) for the rest, as the JVM source requires."""
    fallback = -2 if default_start == "earliest" else -1
    return json.dumps(
        {
            topic: {str(p): int(start_offsets.get(topic, {}).get(p, fallback)) for p in parts}
            for topic, parts in partitions.items()
        }
    )


class _Backend:
    name = ""
    format = ""
    fences = False
    scores_in_source = False

    @property
    def columns(self) -> tuple[str, ...]:
        """The source columns :meth:`read_stream` gives the pipeline."""
        return SOURCE_COLUMNS

    def __init__(self, bootstrap_servers: str, client: Mapping[str, Any]) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client = dict(client)

    def _kafka_options(self) -> dict[str, str]:
        """The client settings as Spark's ``kafka.<Java name>`` options; the python source
        takes the same ones and translates them for librdkafka itself."""
        options = to_spark_options(self.client)
        options["kafka.bootstrap.servers"] = self.bootstrap_servers
        return options

    def _source_options(
        self,
        topics: Sequence[str],
        start_offsets: Offsets | None,
        default_start: str,
        max_offsets_per_trigger: int | None,
        fence_file: str | None,
    ) -> dict[str, str]:
        options = {**self._kafka_options(), "subscribe": ",".join(topics)}
        if start_offsets:
            partitions = topic_partitions(self.bootstrap_servers, self.client, topics)
            options["startingOffsets"] = starting_offsets_json(
                start_offsets, partitions, default_start
            )
        else:
            options["startingOffsets"] = default_start
        if max_offsets_per_trigger:
            options["maxOffsetsPerTrigger"] = str(max_offsets_per_trigger)
        options.update(self._extra_source_options(default_start, fence_file))
        return options

    def _extra_source_options(self, default_start: str, fence_file: str | None) -> dict[str, str]:
        return {}

    def read_stream(
        self,
        spark: SparkSession,
        *,
        topics: Sequence[str],
        start_offsets: Offsets | None,
        default_start: str = "earliest",
        max_offsets_per_trigger: int | None = None,
        fence_file: str | None = None,
        scorer: Any = None,
        produce: bool = True,
    ) -> DataFrame:
        options = self._source_options(
            topics, start_offsets, default_start, max_offsets_per_trigger, fence_file
        )
        log.info('kafka source backend="%s" options="%s"', self.name, loggable(options))
        if scorer is not None:
            if not self.scores_in_source:
                raise KafkaIOError(f"the {self.name} Kafka source cannot score as it reads")
            options["scorer"] = self._scorer_option(scorer)
            options["produce"] = str(produce).lower()
        df = spark.readStream.format(self.format).options(**options).load()
        return df if scorer is not None else df.select(*self.columns)

    def _scorer_option(self, scorer: Any) -> str:
        raise NotImplementedError

    def write_stream(
        self,
        df: DataFrame,
        *,
        checkpoint_dir: str,
        trigger: str,
        query_name: str,
        available_now: bool = False,
        produced: bool = False,
        fence_file: str | None = None,
    ) -> StreamingQuery:
        if produced:
            writer = df.writeStream.format("noop")
        else:
            writer = df.writeStream.format(self.format).options(**self._kafka_options())
        writer = writer.option("checkpointLocation", checkpoint_dir)
        if available_now:
            writer = writer.trigger(availableNow=True)
        else:
            writer = writer.trigger(processingTime=trigger)
        return writer.queryName(query_name).start()


class JvmKafkaBackend(_Backend):
    """Spark's own Kafka source and sink.

    Spark's Kafka source cannot be fenced, so the *sink* is: with a ``fence_file`` the
    stream is written through ``foreachBatch``, which checks the fence on the driver before
    each batch writes anything. Once the file exists, a batch that has not started writing
    ends the query with :data:`FENCED` instead, uncommitted, so its offsets are neither
    persisted nor written twice; a batch already writing completes and is committed. A stop,
    handoff or swap therefore ends on a batch boundary with no duplicates, as with the
    python source's fence. The ack file names the batch that was held back.
    """

    name = "jvm"
    format = "kafka"
    fences = True

    def __init__(
        self,
        bootstrap_servers: str,
        client: Mapping[str, Any],
        source_options: Mapping[str, str] | None = None,
        on_out_of_range: str = "fail",
    ) -> None:
        """``source_options``: Spark's Kafka source options (validated by the config);
        ``failOnDataLoss`` defaults to ``offsets.on_out_of_range`` (fail → true)."""
        super().__init__(bootstrap_servers, client)
        self.source_options = {
            "failOnDataLoss": "true" if on_out_of_range == "fail" else "false",
            **{k: _option(v) for k, v in (source_options or {}).items()},
        }

    @property
    def columns(self) -> tuple[str, ...]:
        """With ``includeHeaders``, each record's headers too: carried to its output."""
        headers = self.source_options.get("includeHeaders") == "true"
        return (*SOURCE_COLUMNS, "headers") if headers else SOURCE_COLUMNS

    def _extra_source_options(self, default_start: str, fence_file: str | None) -> dict[str, str]:
        return dict(self.source_options)

    def write_stream(
        self,
        df: DataFrame,
        *,
        checkpoint_dir: str,
        trigger: str,
        query_name: str,
        available_now: bool = False,
        produced: bool = False,
        fence_file: str | None = None,
    ) -> StreamingQuery:
        if fence_file is None or available_now or produced:
            return super().write_stream(
                df,
                checkpoint_dir=checkpoint_dir,
                trigger=trigger,
                query_name=query_name,
                available_now=available_now,
                produced=produced,
            )
        options = self._kafka_options()
        _quiet_fence_tracebacks()

        def write(batch: DataFrame, batch_id: int) -> None:
            if os.path.exists(fence_file):
                with open(fence_file + ".ack", "w") as ack:
                    ack.write(f"held back batch {batch_id}")
                raise KafkaIOError(FENCED)
            batch.write.format(self.format).options(**options).save()

        return (
            df.writeStream.foreachBatch(write)
            .option("checkpointLocation", checkpoint_dir)
            .trigger(processingTime=trigger)
            .queryName(query_name)
            .start()
        )


class _FenceFilter(logging.Filter):
    """Drops py4j's traceback of the fence's deliberate error (a stop, not a failure)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and is_fenced(record.exc_info[1]))


def _quiet_fence_tracebacks() -> None:
    py4j = logging.getLogger("py4j.clientserver")
    if not any(isinstance(f, _FenceFilter) for f in py4j.filters):
        py4j.addFilter(_FenceFilter())


def _option(value: object) -> str:
    text = str(value)
    return text.lower() if text.lower() in ("true", "false") else text


def is_fenced(error: object) -> bool:
    """Whether a query's error is the jvm sink's fence (a clean stop)."""
    return error is not None and FENCED in str(error)


class PythonKafkaBackend(_Backend):
    """streamer's Python Data Source on confluent-kafka."""

    name = "python"
    format = "streamer_kafka"
    fences = True

    def __init__(
        self,
        bootstrap_servers: str,
        client: Mapping[str, Any],
        end_offsets: str = "list",
        score_in_source: bool = True,
    ) -> None:
        super().__init__(bootstrap_servers, client)
        self.end_offsets = end_offsets
        self.scores_in_source = score_in_source

    def _scorer_option(self, scorer: Any) -> str:
        from streamer.kafka.pysource import scorer_option

        return scorer_option(scorer)

    def _extra_source_options(self, default_start: str, fence_file: str | None) -> dict[str, str]:
        options = {"endOffsets": self.end_offsets, "startingOffsetsDefault": default_start}
        if fence_file:
            options["fenceFile"] = fence_file
        return options

    # Imported only when used: the data source needs the pinned pyspark's streaming Python
    # Data Source API (admission control, Arrow writer), which an EMR runtime's older
    # PySpark may lack; the jvm backend never needs it.
    def read_stream(self, spark: SparkSession, **kwargs: Any) -> DataFrame:
        _register(spark)
        return super().read_stream(spark, **kwargs)

    def write_stream(self, df: DataFrame, **kwargs: Any) -> StreamingQuery:
        _register(df.sparkSession)
        return super().write_stream(df, **kwargs)


def _register(spark: SparkSession) -> None:
    """Register the Python data source, usable from the calling thread.

    Spark looks a Python data source up in the JVM thread's *active* session. A Python
    thread gets its own JVM thread (py4j pinned threads), which has none until some call
    sets it (``createDataFrame`` does; ``readStream``/``writeStream`` do not), so a query
    started from such a thread failed with DATA_SOURCE_NOT_FOUND (seen in the test suite).
    PySpark has no public call for this; ``createDataFrame`` makes the same one.
    """
    from streamer.kafka.pysource import KafkaDataSource

    spark.dataSource.register(KafkaDataSource)
    jvm = spark._jvm
    assert jvm is not None
    jvm.SparkSession.setActiveSession(spark._jsparkSession)


def jvm_connector_available(spark: SparkSession) -> bool:
    """Whether Spark's Kafka connector class loads in the driver JVM."""
    jvm = spark.sparkContext._jvm
    if jvm is None:
        return False
    try:
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        jvm.java.lang.Class.forName(CONNECTOR_CLASS, False, loader)
        return True
    except Exception:
        return False


def resolve_end_offsets(choice: str, bootstrap_servers: str, client: Mapping[str, Any]) -> str:
    """``auto`` → ``fetch`` on tansu (its ListOffsets bug), ``list`` elsewhere."""
    if choice != "auto":
        return choice
    return "fetch" if is_tansu(cluster_id(bootstrap_servers, client)) else "list"


def offset_probe(kafka: KafkaConfig) -> OffsetProbe:
    """A probe for the configured cluster, with the end-offset strategy resolved."""
    strategy = resolve_end_offsets(kafka.end_offsets, kafka.bootstrap_servers, kafka.client)
    return OffsetProbe(kafka.bootstrap_servers, kafka.client, strategy)


def broker_ends(
    kafka: KafkaConfig,
) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]:
    """Earliest and latest offsets of every partition of the input topic."""
    probe = offset_probe(kafka)
    try:
        tps = probe.partitions([kafka.input_topic])
        return probe.earliest(tps), probe.latest(tps)
    finally:
        probe.close()


def choose_backend(choice: str, connector_available: bool) -> str:
    """The backend name for a configured choice; explains what to do when it cannot be had."""
    if choice not in BACKENDS:
        raise KafkaIOError(f"kafka.backend = {choice!r}: expected one of {', '.join(BACKENDS)}")
    if choice == "auto":
        return "jvm" if connector_available else "python"
    if choice == "jvm" and not connector_available:
        raise KafkaIOError(
            f"kafka.backend = 'jvm' but {CONNECTOR_CLASS} is not on the classpath; add "
            "org.apache.spark:spark-sql-kafka-0-10_2.13:<spark version> (spark.jars or "
            "--packages), or set kafka.backend: python"
        )
    return choice


def select_backend(
    choice: str,
    spark: SparkSession,
    *,
    bootstrap_servers: str,
    client: Mapping[str, Any],
    end_offsets: str = "list",
    score_in_source: bool = True,
    source_options: Mapping[str, str] | None = None,
    on_out_of_range: str = "fail",
) -> KafkaBackend:
    available = jvm_connector_available(spark)
    name = choose_backend(choice, available)
    log.info(
        'kafka backend selected backend="%s" configured="%s" jvm_connector="%s"',
        name,
        choice,
        "present" if available else "absent",
    )
    if name == "jvm":
        return JvmKafkaBackend(bootstrap_servers, client, source_options, on_out_of_range)
    strategy = resolve_end_offsets(end_offsets, bootstrap_servers, client)
    log.info('python source end offsets strategy="%s"', strategy)
    return PythonKafkaBackend(bootstrap_servers, client, strategy, score_in_source)


def recent_values(kafka: KafkaConfig, rows: int, timeout: float = 15.0) -> list[bytes | None]:
    """About ``rows`` of the input topic's most recent record values (driver side), spread
    over its partitions; fewer when the topic holds fewer. Used to vet a new model version
    on the events it will see."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    earliest, latest = broker_ends(kafka)
    per_partition = max(1, rows // max(1, len(latest)))
    wanted = {
        tp: (max(earliest.get(tp, 0), end - per_partition), end)
        for tp, end in latest.items()
        if end > earliest.get(tp, 0)
    }
    if not wanted:
        return []
    consumer = Consumer(
        client_config(
            kafka.bootstrap_servers,
            kafka.client,
            group_id=f"streamer-sample-{uuid.uuid4().hex[:8]}",
            enable_auto_commit=False,
            enable_partition_eof=True,
        )
    )
    values: list[bytes | None] = []
    try:
        consumer.assign([TopicPartition(t, p, start) for (t, p), (start, _) in wanted.items()])
        remaining = dict(wanted)
        deadline = time.monotonic() + timeout
        while remaining and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=0.5):
                offset, error = message.offset(), message.error()
                tp = (str(message.topic()), int(message.partition() or 0))
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        remaining.pop(tp, None)  # the end, short of it (transaction markers)
                    continue
                if offset is None:
                    continue
                if tp in remaining and offset < remaining[tp][1]:
                    values.append(message.value())
                    if offset + 1 >= remaining[tp][1]:
                        del remaining[tp]
    finally:
        consumer.close()
    return values
