"""Kafka I/O: two backends (Spark's JVM ``kafka`` format, or a Python Data Source on
confluent-kafka) behind one interface, the produce and read-to-end loops every client
needs (:mod:`.io`), admin helpers and embedded test brokers."""

from streamer.kafka.backend import SOURCE_COLUMNS, KafkaBackend, starting_offsets_json
from streamer.kafka.jvm_backend import JvmKafkaBackend, is_fenced, jvm_connector_available
from streamer.kafka.python_backend import PythonKafkaBackend
from streamer.kafka.selection import choose_backend, select_backend

__all__ = [
    "SOURCE_COLUMNS",
    "JvmKafkaBackend",
    "KafkaBackend",
    "PythonKafkaBackend",
    "choose_backend",
    "is_fenced",
    "jvm_connector_available",
    "select_backend",
    "starting_offsets_json",
]
