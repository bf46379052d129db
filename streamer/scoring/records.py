"""The JSON written to Kafka: one output record per scored event, one dead letter per reject.

Output value::

    {"key": ..., "prediction": ..., "label": ..., "model": {"name": ..., "version": ...},
     "source": {"topic": ..., "partition": ..., "offset": ..., "timestamp": ...},
     "scored_at": ...}

Dead-letter value::

    {"reason": ..., "error": ..., "value": ..., "value_encoding": "utf8" | "base64",
     "key": ..., "source": {...}, "failed_at": ...}

Timestamps are epoch milliseconds (Kafka's own unit). ``key`` is the UTF-8 text of the
record key, or its base64 with ``"key_encoding": "base64"`` beside it when the key is not
UTF-8; a missing key is ``null``. ``label`` appears only when a threshold is configured.
The raw value in a dead letter is lossless: UTF-8 text when it decodes, base64 otherwise.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import numpy as np


def _text_or_base64(raw: bytes | None) -> tuple[str | None, str]:
    if raw is None:
        return None, "utf8"
    try:
        return raw.decode("utf-8"), "utf8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def _dumps(record: dict[str, Any]) -> bytes:
    # default=str: an exotic prediction type (Decimal, a custom object) is written as text
    # rather than failing the batch.
    return json.dumps(record, separators=(",", ":"), allow_nan=False, default=str).encode()


def source_fields(topic: str, partition: int, offset: int, timestamp_ms: int | None) -> dict:
    return {"topic": topic, "partition": partition, "offset": offset, "timestamp": timestamp_ms}


def _put_key(record: dict[str, Any], key: bytes | None) -> None:
    text, encoding = _text_or_base64(key)
    record["key"] = text
    if encoding == "base64":
        record["key_encoding"] = "base64"


def to_json_value(value: Any) -> Any:
    """A prediction cell as plain JSON: numpy scalars unwrapped, NaN and ±inf as null."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [to_json_value(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def output_value(
    *,
    key: bytes | None,
    prediction: Any,
    label: bool | None,
    with_label: bool,
    model_name: str,
    model_version: str | None,
    source: dict,
    scored_at_ms: int,
) -> bytes:
    record: dict[str, Any] = {}
    _put_key(record, key)
    record["prediction"] = prediction
    if with_label:
        record["label"] = label
    record["model"] = {"name": model_name, "version": model_version}
    record["source"] = source
    record["scored_at"] = scored_at_ms
    return _dumps(record)


def dead_letter_value(
    *,
    reason: str,
    error: str,
    raw: bytes | None,
    key: bytes | None,
    source: dict,
    failed_at_ms: int,
) -> bytes:
    value, encoding = _text_or_base64(raw)
    record: dict[str, Any] = {
        "reason": reason,
        "error": error,
        "value": value,
        "value_encoding": encoding,
    }
    _put_key(record, key)
    record["source"] = source
    record["failed_at"] = failed_at_ms
    return _dumps(record)
