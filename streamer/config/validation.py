"""Checks of config values: each key's type and range, then the rules across keys.

Every error is one line that names the key, the value (secrets masked), where it came from
and what is accepted, with a "did you mean" for typos.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from collections.abc import Mapping
from typing import Any

import yaml

from streamer.config.sections import Config, FrozenMap, parse_trigger_seconds
from streamer.errors import ConfigError
from streamer.secrets import MASK, mask_value

_CHOICES: dict[str, tuple[str, ...]] = {
    "kafka.backend": ("auto", "jvm", "python"),
    "kafka.end_offsets": ("auto", "list", "fetch"),
    "kafka.starting_offsets": ("earliest", "latest"),
    "offsets.store": ("file", "s3", "kafka-group"),
    "offsets.on_out_of_range": ("fail", "skip"),
    "logging.level": ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    "logging.format": ("auto", "json", "text"),
    "handoff.color": ("blue", "green"),
    "model.env_manager": ("local", "virtualenv", "uv"),
}
_POSITIVE = {
    "spark.max_offsets_per_trigger",
    "model.poll_seconds",
    "model.validation_rows",
    "model.cache_size",
    "spark.arrow_batch_size",
    "parse.max_record_bytes",
    "offsets.keep",
    "metrics.ready_trigger_multiple",
    "metrics.ready_min_seconds",
    "metrics.lag_interval_seconds",
    "handoff.lease_timeout_seconds",
    "handoff.heartbeat_seconds",
    "handoff.drain_timeout_seconds",
    "handoff.warmup_rows",
    "emr.promote_timeout_seconds",
    "emr.poll_seconds",
    "emr.max_attempts",
}
_NON_EMPTY = {
    "kafka.bootstrap_servers",
    "kafka.input_topic",
    "kafka.output_topic",
    "kafka.dead_letter_topic",
    "model.uri",
    "spark.app_name",
    "offsets.path",
}


def fail(key: str, value: Any, origin: str, expected: str) -> ConfigError:
    shown = mask_value(key, value)
    return ConfigError(f"config error: {key} = {shown!r} (from {origin}): {expected}")


def convert(key: str, value: Any, hint: Any, origin: str, from_env: bool) -> Any:
    """Check and convert one value to the field's type; env values arrive as strings."""
    optional = type(None) in typing.get_args(hint)
    base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
    if from_env and isinstance(value, str):
        if optional and value.strip() in ("", "null", "~"):
            value = None
        elif base is not str and base is not FrozenMap:
            value = yaml.safe_load(value)
    if value is None:
        if optional:
            return None
        raise fail(key, value, origin, "a value is required here")
    if base is FrozenMap:
        if from_env and isinstance(value, str):
            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError:
                value = None
        if not isinstance(value, Mapping):
            raise fail(key, value, origin, 'expected a mapping such as {"key": "value"}')
        bad = [k for k, v in value.items() if isinstance(v, (Mapping, list)) or v is None]
        if bad:
            raise fail(key, value, origin, f"values must be scalars; fix {bad}")
        return value
    if base is bool:
        if isinstance(value, bool):
            return value
        raise fail(key, value, origin, "expected true or false")
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(key, value, origin, "expected a whole number")
        return value
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail(key, value, origin, "expected a number")
        return float(value)
    if base is str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise fail(key, value, origin, "expected a string")
        return str(value)
    raise AssertionError(f"unhandled config type {hint!r}")


def suggest(name: str, options: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f"; did you mean {close[0]}?" if close else ""


SOURCE_OPTIONS: Mapping[str, str] = {
    "failOnDataLoss": "bool",
    "includeHeaders": "bool",
    "minPartitions": "int",
    "minOffsetsPerTrigger": "int",
    "maxTriggerDelay": "str",
    "fetchOffset.numRetries": "int",
    "fetchOffset.retryIntervalMs": "int",
    "kafkaConsumer.pollTimeoutMs": "int",
    "groupIdPrefix": "str",
}
"""Spark Kafka source options ``kafka.source_options`` may set, by kind. Topics, starting
offsets and ``maxOffsetsPerTrigger`` come from their own keys; ``kafka.*`` client settings
from ``kafka.client``."""

_OWN_KEYS = {
    "subscribe": "kafka.input_topic",
    "startingOffsets": "the offset store (offsets.*)",
    "maxOffsetsPerTrigger": "spark.max_offsets_per_trigger",
}


def _check_source_options(value: Mapping[str, Any], origin: str) -> None:
    for name, raw in value.items():
        if name in _OWN_KEYS:
            raise fail(f"kafka.source_options.{name}", raw, origin, f"set {_OWN_KEYS[name]}")
        if name.startswith("kafka."):
            raise fail(
                f"kafka.source_options.{name}",
                MASK,
                origin,
                f"client settings go in kafka.client, as {name.removeprefix('kafka.')}",
            )
        kind = SOURCE_OPTIONS.get(name)
        if kind is None:
            raise fail(
                f"kafka.source_options.{name}",
                raw,
                origin,
                f"expected one of {', '.join(SOURCE_OPTIONS)}{suggest(name, SOURCE_OPTIONS)}",
            )
        text = str(raw).strip().lower()
        if kind == "bool" and text not in ("true", "false"):
            raise fail(f"kafka.source_options.{name}", raw, origin, "expected true or false")
        if kind == "int" and not (text.isdigit() and int(text) > 0):
            raise fail(f"kafka.source_options.{name}", raw, origin, "expected an integer > 0")


def validate_key(key: str, value: Any, origin: str) -> None:
    if key == "kafka.source_options":
        _check_source_options(value, origin)
    if key in _CHOICES and value is not None:
        choices = _CHOICES[key]
        if (value.upper() if key == "logging.level" else value) not in choices:
            raise fail(key, value, origin, f"expected one of {', '.join(choices)}")
    if key in _POSITIVE and value is not None and value <= 0:
        raise fail(key, value, origin, "expected a number greater than 0")
    if key in _NON_EMPTY and not str(value).strip():
        raise fail(key, value, origin, "must not be empty")
    if key == "spark.trigger":
        try:
            parse_trigger_seconds(value)
        except ValueError:
            raise fail(
                key,
                value,
                origin,
                "expected '<number> <unit>' with unit milliseconds, seconds or minutes, "
                "e.g. '0 seconds' or '500 milliseconds'",
            ) from None
    if key == "metrics.port" and not 0 <= value <= 65535:
        raise fail(key, value, origin, "expected a TCP port 1-65535, or 0 to disable")
    if key == "offsets.group_id" and value is not None and not value.strip():
        raise fail(key, value, origin, "expected a consumer group id, or null for none")
    if (
        key in ("model.uri", "shadow.model_uri")
        and value is not None
        and not re.match(r"^(models:/|runs:/|[a-z][a-z0-9+.-]*://|/|\.|~|\w)", value)
    ):
        raise fail(
            key,
            value,
            origin,
            "expected models:/<name>@<alias>, models:/<name>/<version>, runs:/... or a path",
        )


def check_model(config: Config) -> Config:
    """Cross-key rules of the model and shadow sections; fills in the shadow topic."""
    if config.model.score_column is not None and config.model.threshold is None:
        raise ConfigError(
            "config error: model.score_column is set but model.threshold is not; set "
            "model.threshold or remove model.score_column"
        )
    model, shadow, kafka = config.model, config.shadow, config.kafka
    placeholders = re.findall(r"\{([^{}]*)\}", model.uri)
    if model.group_by is not None:
        if placeholders != [model.group_by] or not model.uri.startswith("models:/"):
            raise ConfigError(
                f"config error: model.uri = {model.uri!r} with model.group_by = "
                f"{model.group_by!r}: expected a registry template naming the field once, "
                f"e.g. models:/fraud-{{{model.group_by}}}@champion"
            )
    elif placeholders:
        raise ConfigError(
            f"config error: model.uri = {model.uri!r} is a template but model.group_by is not "
            "set; set model.group_by to the event field it names"
        )
    if model.follow_alias and "@" not in model.uri:
        raise ConfigError(
            f"config error: model.follow_alias is true but model.uri = {model.uri!r} names no "
            "alias; use models:/<name>@<alias> or set model.follow_alias: false"
        )
    if shadow.model_uri is None:
        return config
    if model.group_by is not None:
        raise ConfigError(
            "config error: shadow.model_uri is set with model.group_by; shadow scoring of "
            "grouped models is not supported. Remove one of them"
        )
    if model.cache_size < 2:
        raise ConfigError(
            f"config error: model.cache_size = {model.cache_size} with shadow.model_uri set: "
            "each worker needs room for the model and the shadow; set it to 2 or more"
        )
    topic = shadow.topic or f"{kafka.output_topic}.shadow"
    taken = {
        "kafka.input_topic": kafka.input_topic,
        "kafka.output_topic": kafka.output_topic,
        "kafka.dead_letter_topic": kafka.dead_letter_topic,
    }
    for key, value in taken.items():
        if topic == value:
            raise ConfigError(
                f"config error: shadow.topic = {topic!r} is the same as {key}; the shadow "
                "needs its own topic"
            )
    return dataclasses.replace(config, shadow=dataclasses.replace(shadow, topic=topic))


def _check_client(client: FrozenMap, backend: str, origins: Mapping[str, str]) -> None:
    """``kafka.client`` in the Java client's names (:func:`streamer.kafka.dialect.validate`);
    with ``kafka.backend: python`` also translatable for librdkafka, so that fails here
    and not in a worker."""
    # Imported here: streamer.kafka imports this module.
    from streamer.kafka.dialect import ClientSettingError, to_librdkafka, validate

    try:
        validate(client)
        if backend == "python":
            to_librdkafka(client)
    except ClientSettingError as exc:
        origin = origins.get(exc.key, "defaults")
        raise ConfigError(
            f"config error: kafka.client.{exc.key} (from {origin}) {exc.problem}"
        ) from None


def check_kafka(config: Config, client_origins: Mapping[str, str]) -> None:
    """Cross-key rules of the kafka section: the client settings, the source options the
    backend takes, and three distinct topics."""
    kafka = config.kafka
    _check_client(kafka.client, kafka.backend, client_origins)
    if kafka.backend == "python" and kafka.source_options:
        name = next(iter(kafka.source_options))
        raise ConfigError(
            f"config error: kafka.source_options.{name} is an option of Spark's Kafka source; "
            "kafka.backend = 'python' takes none: remove it, or use kafka.backend: jvm"
        )
    for key in ("output_topic", "dead_letter_topic"):
        if getattr(kafka, key) == kafka.input_topic:
            raise ConfigError(
                f"config error: kafka.{key} = {getattr(kafka, key)!r} is the same as "
                "kafka.input_topic; the service would read its own output. Use another topic"
            )
    if kafka.output_topic == kafka.dead_letter_topic:
        raise ConfigError(
            f"config error: kafka.dead_letter_topic = {kafka.dead_letter_topic!r} is the same "
            "as kafka.output_topic; dead letters need their own topic"
        )


def check_offsets(config: Config) -> None:
    """Cross-key rules of the offset store, and of the handoff lease kept beside it."""
    offsets = config.offsets
    if offsets.store == "kafka-group" and not offsets.group_id:
        raise ConfigError(
            "config error: offsets.store = 'kafka-group' needs offsets.group_id; set it to the "
            "consumer group that should hold the service's position"
        )
    if offsets.store == "s3" and not offsets.path.startswith("s3://"):
        raise ConfigError(
            f"config error: offsets.path = {offsets.path!r} with offsets.store = 's3': expected "
            "s3://bucket/prefix"
        )
    if offsets.store == "file" and offsets.path.startswith("s3://"):
        raise ConfigError(
            f"config error: offsets.path = {offsets.path!r} with offsets.store = 'file': set "
            "offsets.store: s3, or give a local directory"
        )
    handoff = config.handoff
    if handoff.color is not None and offsets.store == "kafka-group":
        raise ConfigError(
            f"config error: handoff.color = {handoff.color!r} needs the lease next to the "
            "offsets, but offsets.store = 'kafka-group' has no place for it; use file or s3"
        )
    if handoff.lease_timeout_seconds < 3 * handoff.heartbeat_seconds:
        raise ConfigError(
            f"config error: handoff.lease_timeout_seconds = {handoff.lease_timeout_seconds} is "
            f"under 3 x handoff.heartbeat_seconds ({handoff.heartbeat_seconds}); a live owner "
            "would be declared dead. Raise the timeout or shorten the heartbeat"
        )


def check_config(config: Config, client_origins: Mapping[str, str]) -> Config:
    """The rules across keys, after each key passed its own; fills in the shadow topic.
    ``client_origins`` says where each ``kafka.client`` entry was set."""
    check_kafka(config, client_origins)
    config = check_model(config)
    check_offsets(config)
    return config
