"""What a Kafka backend is: the source the pipeline reads and the sink it writes.

Two implement it: ``jvm``, Spark's built-in ``kafka`` format (:mod:`.jvm_backend`), and
``python``, streamer's own Python Data Source on confluent-kafka
(:mod:`.python_backend`); :func:`streamer.kafka.select_backend` picks one. Both hand the
pipeline exactly :data:`SOURCE_COLUMNS` and write rows of ``(topic, key, value)``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import DataStreamWriter, StreamingQuery

from streamer.errors import KafkaIOError
from streamer.kafka.admin import loggable, topic_partitions
from streamer.kafka.dialect import to_spark_options
from streamer.offsets.core import Offsets

log = logging.getLogger(__name__)

SOURCE_COLUMNS = ("key", "value", "topic", "partition", "offset", "timestamp")


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


@dataclass(eq=False, repr=False)  # repr: the client settings may hold secrets
class KafkaBackend:
    """A Spark source and sink for Kafka, configured with the cluster and ``kafka.client``
    (Java client names, passed to Spark as ``kafka.<name>`` options)."""

    bootstrap_servers: str
    client: Mapping[str, Any]

    name: ClassVar[str] = ""
    format: ClassVar[str] = ""
    fences: ClassVar[bool] = False
    """Whether the source honours ``fence_file``: once that file exists it admits no new
    offsets and writes ``<fence_file>.ack`` with where it stopped (a drain with no
    duplicates)."""
    scores_in_source = False
    """Whether ``read_stream`` takes a ``scorer``: the source then scores and produces each
    record itself (see :mod:`streamer.kafka.pysource`), and the stream is written with
    ``write_stream(..., produced=True)``."""

    def __post_init__(self) -> None:
        self.client = dict(self.client)

    @property
    def columns(self) -> tuple[str, ...]:
        """The source columns :meth:`read_stream` gives the pipeline."""
        return SOURCE_COLUMNS

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
        """The source's :data:`SOURCE_COLUMNS`, or with ``scorer`` (when
        :attr:`scores_in_source`) the scorer's output columns, the records produced to
        Kafka by the source unless ``produce`` is false (a dry run)."""
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
        """Start the sink; ``available_now`` runs what is there now and stops (warm-up).
        ``produced``: the source has written the records, the sink only drives the query.
        ``fence_file``: the same file as the source's, for a backend that fences its sink."""
        if produced:
            writer = df.writeStream.format("noop")
        elif available_now:
            writer = self._sink(df, None)
        else:
            writer = self._sink(df, fence_file)
        writer = writer.option("checkpointLocation", checkpoint_dir)
        if available_now:
            writer = writer.trigger(availableNow=True)
        else:
            writer = writer.trigger(processingTime=trigger)
        return writer.queryName(query_name).start()

    def _sink(self, df: DataFrame, fence_file: str | None) -> DataStreamWriter:
        """The Kafka sink; a backend that fences its sink honours ``fence_file`` here."""
        return df.writeStream.format(self.format).options(**self._kafka_options())
