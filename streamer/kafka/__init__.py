"""Kafka I/O: two backends (Spark's JVM ``kafka`` format, or a Python Data Source on
confluent-kafka) behind one interface, the produce and read-to-end loops every client
needs (:mod:`.io`), admin helpers and embedded test brokers.

The backends load pyspark, so the names below are imported on first use: the config
validates ``kafka.client`` with :mod:`.dialect` without loading them (and without an
import circle back to :mod:`streamer.config`). Code inside ``streamer`` imports them from
their own modules, where the type checker sees them.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "SOURCE_COLUMNS": "backend",
    "KafkaBackend": "backend",
    "starting_offsets_json": "backend",
    "JvmKafkaBackend": "jvm_backend",
    "is_fenced": "jvm_backend",
    "jvm_connector_available": "jvm_backend",
    "PythonKafkaBackend": "python_backend",
    "choose_backend": "selection",
    "select_backend": "selection",
}

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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
