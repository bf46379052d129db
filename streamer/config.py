"""Typed, frozen configuration, loaded once at the entry point.

Sources, later wins: the dataclass defaults, the YAML file, then ``STREAMER_<SECTION>__<KEY>``
environment variables. The caller passes the environment in (``load_config(path, env=...)``);
library code never reads ``os.environ``. A bad value stops start-up with one line that
names the key, the value, where it came from, and what is accepted.

Mapping keys (``kafka.client``, ``spark.conf``) take a JSON/YAML mapping from the
environment, merged over the file's; ``STREAMER_KAFKA__CLIENT__SASL_JAAS_CONFIG`` sets the
single entry ``sasl.jaas.config`` (lower-cased, ``_`` → ``.``). Spark conf keys are
case-sensitive, so ``spark.conf`` only takes the JSON form. ``kafka.client`` takes the Java
Kafka client's names and is checked by :func:`streamer.kafka.dialect.validate`.

No error or redacted view shows a secret: values are masked by the one policy in
:mod:`streamer.secrets`.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from streamer.errors import ConfigError
from streamer.secrets import MASK, mask_mapping, mask_url, mask_value

ENV_PREFIX = "STREAMER_"


class FrozenMap(Mapping[str, str]):
    """An immutable str → str mapping whose repr masks secret-looking values. Picklable."""

    __slots__ = ("_data",)
    _data: dict[str, str]

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_data", {str(k): str(v) for k, v in (data or {}).items()})

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> typing.Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("FrozenMap is immutable")

    def __getstate__(self) -> dict[str, str]:
        return self._data

    def __setstate__(self, state: dict[str, str]) -> None:
        object.__setattr__(self, "_data", state)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._data.items())))

    def redacted(self) -> dict[str, str]:
        return mask_mapping(self._data)

    def __repr__(self) -> str:
        return f"FrozenMap({self.redacted()!r})"


_TRIGGER = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*(ms|millisecond|milliseconds|s|second|seconds|min|minute|minutes)\s*$",
    re.I,
)
_TRIGGER_UNITS = {
    "ms": 0.001,
    "millisecond": 0.001,
    "milliseconds": 0.001,
    "s": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
}


def parse_trigger_seconds(trigger: str) -> float:
    """``"0 seconds"``, ``"500 milliseconds"``, ``"2 minutes"`` → seconds."""
    match = _TRIGGER.match(trigger)
    if not match:
        raise ValueError(trigger)
    return float(match[1]) * _TRIGGER_UNITS[match[2].lower()]


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: str = "127.0.0.1:9092"
    input_topic: str = "transactions"
    output_topic: str = "predictions"
    dead_letter_topic: str = "transactions.dlq"
    backend: str = "auto"
    client: FrozenMap = field(default_factory=FrozenMap)
    source_options: FrozenMap = field(default_factory=FrozenMap)
    """Spark's Kafka source options (jvm backend), checked against :data:`SOURCE_OPTIONS`."""
    end_offsets: str = "list"
    """``list`` (ListOffsets, right for Apache Kafka); ``fetch`` works around tansu's
    ListOffsets bug; ``auto`` asks the cluster which it is (a probe, so not the default)."""
    starting_offsets: str = "earliest"
    score_in_source: bool = True


@dataclass(frozen=True)
class ModelConfig:
    uri: str = "models:/fraud-detector@champion"
    tracking_uri: str | None = None
    registry_uri: str | None = None
    threshold: float | None = None
    score_column: str | None = None
    follow_alias: bool = False
    """Poll the registry for the alias's version and swap to a new one at a batch boundary."""
    poll_seconds: float = 30.0
    validation_rows: int = 256
    """Recent input records a new version must score (every one the current version does)."""
    env_manager: str = "local"
    """``local`` loads the model in the service's Python; ``virtualenv``/``uv`` restore the
    model's own environment and serve it from a per-worker scoring server."""
    group_by: str | None = None
    """A top-level event field; ``uri`` is then a template naming it, one model per value."""
    cache_size: int = 8
    """Models each Python worker keeps loaded (least recently used evicted first)."""


@dataclass(frozen=True)
class ShadowConfig:
    """A challenger scored beside the model; its outputs go to their own topic and its
    failures never touch the main output."""

    model_uri: str | None = None
    topic: str | None = None
    """Default: ``<kafka.output_topic>.shadow``."""


@dataclass(frozen=True)
class SparkConfig:
    master: str | None = "local[*]"
    app_name: str = "streamer"
    trigger: str = "0 seconds"
    max_offsets_per_trigger: int | None = None
    arrow_batch_size: int = 10_000
    checkpoint_dir: str | None = None
    conf: FrozenMap = field(default_factory=FrozenMap)


@dataclass(frozen=True)
class ParseConfig:
    max_record_bytes: int = 1_048_576


@dataclass(frozen=True)
class OffsetsConfig:
    store: str = "file"
    path: str = "./state/offsets"
    group_id: str | None = None
    keep: int = 5
    on_out_of_range: str = "fail"
    s3_client: FrozenMap = field(default_factory=FrozenMap)


@dataclass(frozen=True)
class MetricsConfig:
    host: str = "0.0.0.0"
    port: int = 9108
    ready_trigger_multiple: float = 10.0
    ready_min_seconds: float = 120.0
    lag_interval_seconds: float = 5.0


@dataclass(frozen=True)
class HandoffConfig:
    """Blue-green handoff through a lease next to the offsets (see ``streamer.deploy.lease``)."""

    color: str | None = None
    lease_timeout_seconds: float = 30.0
    heartbeat_seconds: float = 2.0
    drain_timeout_seconds: float = 120.0
    warmup_rows: int = 256


@dataclass(frozen=True)
class EmrConfig:
    """``streamer deploy emr``: where and how job runs are submitted to EMR on EKS."""

    app: str = "streamer"
    virtual_cluster_id: str = ""
    execution_role_arn: str = ""
    release_label: str = "emr-spark-8.0.0-latest"
    image: str = ""
    entry_point: str = "local:///opt/streamer/entrypoint.py"
    config_path: str = "/opt/streamer/conf/emr.yaml"
    spark_submit_parameters: str = ""
    log_uri: str | None = None
    log_group: str | None = None
    state_path: str = "./state/deployments.json"
    template: str = "deploy/emr-eks/job-run.json.tmpl"
    promote_timeout_seconds: float = 900.0
    poll_seconds: float = 10.0
    max_attempts: int = 5
    client: FrozenMap = field(default_factory=FrozenMap)


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    format: str = "auto"


@dataclass(frozen=True)
class Config:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    shadow: ShadowConfig = field(default_factory=ShadowConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)
    parse: ParseConfig = field(default_factory=ParseConfig)
    offsets: OffsetsConfig = field(default_factory=OffsetsConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    handoff: HandoffConfig = field(default_factory=HandoffConfig)
    emr: EmrConfig = field(default_factory=EmrConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def redacted(self) -> dict[str, Any]:
        """The whole config as plain data, safe to log: secrets in mappings masked, and
        credentials in URLs (``https://user:pass@host``) hidden."""

        def plain(value: Any) -> Any:
            if isinstance(value, FrozenMap):
                return value.redacted()
            if dataclasses.is_dataclass(value):
                return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
            if isinstance(value, str):
                return mask_url(value)
            return value

        return plain(self)


_SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]

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


def _fail(key: str, value: Any, origin: str, expected: str) -> ConfigError:
    shown = mask_value(key, value)
    return ConfigError(f"config error: {key} = {shown!r} (from {origin}): {expected}")


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _convert(key: str, value: Any, hint: Any, origin: str, from_env: bool) -> Any:
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
        raise _fail(key, value, origin, "a value is required here")
    if base is FrozenMap:
        if from_env and isinstance(value, str):
            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError:
                value = None
        if not isinstance(value, Mapping):
            raise _fail(key, value, origin, 'expected a mapping such as {"key": "value"}')
        bad = [k for k, v in value.items() if isinstance(v, (Mapping, list)) or v is None]
        if bad:
            raise _fail(key, value, origin, f"values must be scalars; fix {bad}")
        return value
    if base is bool:
        if isinstance(value, bool):
            return value
        raise _fail(key, value, origin, "expected true or false")
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(key, value, origin, "expected a whole number")
        return value
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(key, value, origin, "expected a number")
        return float(value)
    if base is str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise _fail(key, value, origin, "expected a string")
        return str(value)
    raise AssertionError(f"unhandled config type {hint!r}")


def _suggest(name: str, options: typing.Iterable[str]) -> str:
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
            raise _fail(f"kafka.source_options.{name}", raw, origin, f"set {_OWN_KEYS[name]}")
        if name.startswith("kafka."):
            raise _fail(
                f"kafka.source_options.{name}",
                MASK,
                origin,
                f"client settings go in kafka.client, as {name.removeprefix('kafka.')}",
            )
        kind = SOURCE_OPTIONS.get(name)
        if kind is None:
            raise _fail(
                f"kafka.source_options.{name}",
                raw,
                origin,
                f"expected one of {', '.join(SOURCE_OPTIONS)}{_suggest(name, SOURCE_OPTIONS)}",
            )
        text = str(raw).strip().lower()
        if kind == "bool" and text not in ("true", "false"):
            raise _fail(f"kafka.source_options.{name}", raw, origin, "expected true or false")
        if kind == "int" and not (text.isdigit() and int(text) > 0):
            raise _fail(f"kafka.source_options.{name}", raw, origin, "expected an integer > 0")


def _validate(key: str, value: Any, origin: str) -> None:
    if key == "kafka.source_options":
        _check_source_options(value, origin)
    if key in _CHOICES and value is not None:
        choices = _CHOICES[key]
        if (value.upper() if key == "logging.level" else value) not in choices:
            raise _fail(key, value, origin, f"expected one of {', '.join(choices)}")
    if key in _POSITIVE and value is not None and value <= 0:
        raise _fail(key, value, origin, "expected a number greater than 0")
    if key in _NON_EMPTY and not str(value).strip():
        raise _fail(key, value, origin, "must not be empty")
    if key == "spark.trigger":
        try:
            parse_trigger_seconds(value)
        except ValueError:
            raise _fail(
                key,
                value,
                origin,
                "expected '<number> <unit>' with unit milliseconds, seconds or minutes, "
                "e.g. '0 seconds' or '500 milliseconds'",
            ) from None
    if key == "metrics.port" and not 0 <= value <= 65535:
        raise _fail(key, value, origin, "expected a TCP port 1-65535, or 0 to disable")
    if key == "offsets.group_id" and value is not None and not value.strip():
        raise _fail(key, value, origin, "expected a consumer group id, or null for none")
    if (
        key in ("model.uri", "shadow.model_uri")
        and value is not None
        and not re.match(r"^(models:/|runs:/|[a-z][a-z0-9+.-]*://|/|\.|~|\w)", value)
    ):
        raise _fail(
            key,
            value,
            origin,
            "expected models:/<name>@<alias>, models:/<name>/<version>, runs:/... or a path",
        )


Layer = dict[str, tuple[Any, str]]
"""Raw values by dotted key, each with where it came from."""


def _read_file(path: str | os.PathLike[str]) -> Layer:
    origin = str(path)
    try:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"config error: cannot read {origin}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        # Not str(exc): PyYAML quotes the offending line, which may hold a secret.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"config error: {origin} is not valid YAML{where}: {problem}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"config error: {origin} must hold a mapping of sections")
    layer: Layer = {}
    for section, values in loaded.items():
        if section not in _SECTIONS:
            raise ConfigError(
                f"config error: unknown section {section} in {origin}"
                f"{_suggest(str(section), _SECTIONS)}"
            )
        if values is None:
            continue
        if not isinstance(values, dict):
            raise _fail(section, values, origin, "expected a mapping of keys")
        known = _field_types(_SECTIONS[section])
        for key, value in values.items():
            dotted = f"{section}.{key}"
            if key not in known:
                raise ConfigError(
                    f"config error: unknown key {dotted} in {origin}"
                    f"{_suggest(dotted, (f'{section}.{k}' for k in known))}"
                )
            layer[dotted] = (value, origin)
    return layer


def _read_env(env: Mapping[str, str]) -> tuple[Layer, dict[str, dict[str, str]]]:
    """``STREAMER_<SECTION>__<KEY>`` values, and single ``kafka.client`` entries."""
    layer: Layer = {}
    entries: dict[str, dict[str, str]] = {}
    for name, value in sorted(env.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].split("__")
        section = parts[0].lower()
        known = _field_types(_SECTIONS[section]) if section in _SECTIONS else {}
        key = parts[1].lower() if len(parts) > 1 else ""
        if len(parts) == 2 and key in known:
            layer[f"{section}.{key}"] = (value, f"environment variable {name}")
        elif len(parts) == 3 and (section, key) == ("kafka", "client"):
            entries.setdefault("kafka.client", {})[parts[2].lower().replace("_", ".")] = value
        else:
            every = [
                f"{ENV_PREFIX}{s.upper()}__{k.upper()}"
                for s, c in _SECTIONS.items()
                for k in _field_types(c)
            ]
            raise ConfigError(
                f"config error: environment variable {name} matches no config key"
                f"{_suggest(name, every)}"
            )
    return layer, entries


def _check_model(config: Config) -> Config:
    """Cross-key rules of the model and shadow sections; fills in the shadow topic."""
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


def load_config(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Config:
    """Defaults ← YAML file ← ``STREAMER_<SECTION>__<KEY>`` variables, validated.

    Mappings merge across layers (an env mapping adds to the file's); other values replace.
    """
    file_layer = _read_file(path) if path is not None else {}
    env_layer, entries = _read_env(env)
    sections: dict[str, Any] = {}
    client_origins: dict[str, str] = {}  # kafka.client entry -> where it was set
    for section, cls in _SECTIONS.items():
        values = {}
        for key, hint in _field_types(cls).items():
            dotted = f"{section}.{key}"
            value, origin = getattr(cls(), key), "defaults"
            for layer, from_env in ((file_layer, False), (env_layer, True)):
                if dotted in layer:
                    raw, origin = layer[dotted]
                    converted = _convert(dotted, raw, hint, origin, from_env)
                    is_map = isinstance(converted, Mapping) and isinstance(value, Mapping)
                    value = {**value, **converted} if is_map else converted
                    if dotted == "kafka.client":
                        client_origins.update(dict.fromkeys(converted, origin))
            if dotted in entries:
                value = {**value, **entries[dotted]}
                for name in entries[dotted]:
                    variable = f"{ENV_PREFIX}KAFKA__CLIENT__{name.upper().replace('.', '_')}"
                    client_origins[name] = f"environment variable {variable}"
            if isinstance(value, Mapping):
                value = FrozenMap(value)
            _validate(dotted, value, origin)
            values[key] = value
        if section == "logging":
            values["level"] = values["level"].upper()
        sections[section] = cls(**values)
    config = Config(**sections)
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
    if config.model.score_column is not None and config.model.threshold is None:
        raise ConfigError(
            "config error: model.score_column is set but model.threshold is not; set "
            "model.threshold or remove model.score_column"
        )
    config = _check_model(config)
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
    return config
