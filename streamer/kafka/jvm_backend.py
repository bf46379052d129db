"""The ``jvm`` backend: Spark's own Kafka source and sink (``spark-sql-kafka-0-10``, on the
classpath of the docker image and of EMR)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import DataStreamWriter

from streamer.errors import KafkaIOError
from streamer.kafka.backend import SOURCE_COLUMNS, KafkaBackend

CONNECTOR_CLASS = "org.apache.spark.sql.kafka010.KafkaSourceProvider"
FENCED = "streamer: the sink is fenced; this batch is left for the next owner"
"""The error a fenced jvm query ends with: a stop, not a failure (see :func:`is_fenced`)."""


@dataclass(eq=False, repr=False)  # repr: the client settings may hold secrets
class JvmKafkaBackend(KafkaBackend):
    """Spark's own Kafka source and sink.

    Spark's Kafka source cannot be fenced, so the *sink* is: with a ``fence_file`` the
    stream is written through ``foreachBatch``, which checks the fence on the driver before
    each batch writes anything. Once the file exists, a batch that has not started writing
    ends the query with :data:`FENCED` instead, uncommitted, so its offsets are neither
    persisted nor written twice; a batch already writing completes and is committed. A stop,
    handoff or swap therefore ends on a batch boundary with no duplicates, as with the
    python source's fence. The ack file names the batch that was held back.
    """

    name: ClassVar[str] = "jvm"
    format: ClassVar[str] = "kafka"
    fences: ClassVar[bool] = True

    source_options: Mapping[str, Any] | None = None
    """Spark's Kafka source options (validated by the config)."""
    on_out_of_range: str = "fail"
    """``offsets.on_out_of_range``: the default of ``failOnDataLoss`` (fail → true)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.source_options = {
            "failOnDataLoss": "true" if self.on_out_of_range == "fail" else "false",
            **{k: _option(v) for k, v in (self.source_options or {}).items()},
        }

    @property
    def columns(self) -> tuple[str, ...]:
        """With ``includeHeaders``, each record's headers too: carried to its output."""
        headers = (self.source_options or {}).get("includeHeaders") == "true"
        return (*SOURCE_COLUMNS, "headers") if headers else SOURCE_COLUMNS

    def _extra_source_options(self, default_start: str, fence_file: str | None) -> dict[str, str]:
        return dict(self.source_options or {})

    def _sink(self, df: DataFrame, fence_file: str | None) -> DataStreamWriter:
        if fence_file is None:
            return super()._sink(df, None)
        options = self._kafka_options()
        _quiet_fence_tracebacks()

        def write(batch: DataFrame, batch_id: int) -> None:
            if os.path.exists(fence_file):
                with open(fence_file + ".ack", "w") as ack:
                    ack.write(f"held back batch {batch_id}")
                raise KafkaIOError(FENCED)
            batch.write.format(self.format).options(**options).save()

        return df.writeStream.foreachBatch(write)


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
