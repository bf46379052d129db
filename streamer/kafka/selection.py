"""Which Kafka backend a run uses: ``kafka.backend`` is ``jvm``, ``python`` or ``auto``,
which picks ``jvm`` when Spark's Kafka connector class loads, else ``python``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pyspark.sql import SparkSession

from streamer.errors import KafkaIOError
from streamer.kafka.backend import KafkaBackend
from streamer.kafka.jvm_backend import CONNECTOR_CLASS, JvmKafkaBackend, jvm_connector_available
from streamer.kafka.probe import resolve_end_offsets
from streamer.kafka.python_backend import PythonKafkaBackend

log = logging.getLogger(__name__)

BACKENDS = ("auto", "jvm", "python")


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
