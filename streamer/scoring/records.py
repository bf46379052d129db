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
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import numpy as np


class Reason(StrEnum):
    """Dead-letter reason codes. Stable: they are part of the dead-letter record contract."""

    EMPTY_VALUE = "empty_value"
    TOO_LARGE = "too_large"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    NON_FINITE_NUMBER = "non_finite_number"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    NULL_FIELD = "null_field"
    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"
    MODEL_ERROR = "model_error"
    NO_MODEL_FOR_GROUP = "no_model_for_group"


REASONS: tuple[str, ...] = tuple(r.value for r in Reason)


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


_ascii_json = json.encoder.encode_basestring_ascii  # what json.dumps writes for a str


def _json_scalar(value: Any) -> str:
    """``value`` as ``_dumps`` writes it; the common scalar types without the encoder."""
    kind = type(value)
    if kind is float:
        return float.__repr__(value)  # finite: predictions come through to_json_value
    if kind is int:
        return int.__repr__(value)
    if kind is str:
        return _ascii_json(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is dict and all(type(k) is str for k in value):
        return "{" + ",".join(f"{_ascii_json(k)}:{_json_scalar(v)}" for k, v in value.items()) + "}"
    return _dumps(value).decode()


def output_values(
    *,
    keys: Sequence[bytes | None],
    predictions: Sequence[Any],
    labels: Sequence[bool | None] | None,
    model_name: str,
    model_version: str | None,
    topic: Sequence[str],
    partition: Sequence[int],
    offset: Sequence[int],
    timestamp_ms: Sequence[int | None],
    scored_at_ms: int,
) -> list[bytes]:
    """:func:`output_value` for many records at once, byte for byte the same.

    The record is assembled from pre-encoded pieces instead of a dict per record through
    ``json.dumps``: the model part and each topic are encoded once, keys and predictions
    with the encoder's own string and number forms. ``labels`` is None without a threshold.
    """
    model = ',"model":' + _dumps({"name": model_name, "version": model_version}).decode()
    topics: dict[str, str] = {}
    out = []
    for i, (key, prediction) in enumerate(zip(keys, predictions)):
        text, encoding = _text_or_base64(key)
        key_json = "null" if text is None else _ascii_json(text)
        if encoding == "base64":
            key_json += ',"key_encoding":"base64"'
        name = topic[i]
        topic_json = topics.get(name)
        if topic_json is None:
            topic_json = topics[name] = _ascii_json(name)
        label = "" if labels is None else ',"label":' + _json_scalar(labels[i])
        stamp = timestamp_ms[i]
        out.append(
            (
                f'{{"key":{key_json},"prediction":{_json_scalar(prediction)}{label}{model},'
                f'"source":{{"topic":{topic_json},"partition":{partition[i]},'
                f'"offset":{offset[i]},"timestamp":{"null" if stamp is None else stamp}}},'
                f'"scored_at":{scored_at_ms}}}'
            ).encode()
        )
    return out


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
