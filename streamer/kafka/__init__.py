"""Kafka I/O: two backends (Spark's JVM ``kafka`` format, or a Python Data Source on
confluent-kafka) behind one interface, plus admin helpers and an embedded test broker."""

from streamer.kafka.backend import (
    SOURCE_COLUMNS,
    JvmKafkaBackend,
    KafkaBackend,
    PythonKafkaBackend,
    choose_backend,
    jvm_connector_available,
    select_backend,
)

__all__ = [
    "SOURCE_COLUMNS",
    "JvmKafkaBackend",
    "KafkaBackend",
    "PythonKafkaBackend",
    "choose_backend",
    "jvm_connector_available",
    "select_backend",
]
