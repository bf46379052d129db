"""The config's typed, frozen sections: one dataclass per section of the YAML file."""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streamer.secrets import mask_mapping, mask_url


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
    """Spark's Kafka source options (jvm backend), checked against
    :data:`streamer.config.validation.SOURCE_OPTIONS`."""
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
    """The driver's HTTP endpoint: ``/metrics``, ``/healthz`` and ``/readyz``."""

    host: str = "0.0.0.0"
    port: int = 9108
    """0 turns the endpoint off."""
    ready_trigger_multiple: float = 10.0
    ready_min_seconds: float = 120.0
    """``/readyz`` fails when no progress event came within
    ``max(ready_trigger_multiple x spark.trigger, ready_min_seconds)``."""
    lag_interval_seconds: float = 5.0
    """How often the consumer lag is measured against the broker."""


@dataclass(frozen=True)
class HandoffConfig:
    """Blue-green handoff through a lease next to the offsets (see ``streamer.deploy.lease``)."""

    color: str | None = None
    """This instance's side, ``blue`` or ``green``; null runs without a lease."""
    lease_timeout_seconds: float = 30.0
    """A lease whose heartbeat is older than this is stale and may be taken over."""
    heartbeat_seconds: float = 2.0
    drain_timeout_seconds: float = 120.0
    """How long a stopping query may take to finish its batch (a handoff, a model swap)."""
    warmup_rows: int = 256
    """Recent input records a new owner (or a new model version) scores before it serves."""


@dataclass(frozen=True)
class EmrConfig:
    """``streamer deploy emr``: where and how job runs are submitted to EMR on EKS."""

    app: str = "streamer"
    """Names the job runs (``<app>-<color>-...``) and tags them ``app``."""
    virtual_cluster_id: str = ""
    execution_role_arn: str = ""
    release_label: str = "emr-spark-8.0.0-latest"
    image: str = ""
    """The job's container image (``spark.kubernetes.container.image``)."""
    entry_point: str = "local:///opt/streamer/entrypoint.py"
    config_path: str = "/opt/streamer/conf/emr.yaml"
    """The config inside the image: the job runs ``streamer run --config <config_path>``."""
    spark_submit_parameters: str = ""
    """Added after the Arrow settings and the image."""
    log_uri: str | None = None
    log_group: str | None = None
    state_path: str = "./state/deployments.json"
    """The deployment state: a local file or ``s3://bucket/key``."""
    template: str = "deploy/emr-eks/job-run.json.tmpl"
    """The StartJobRun request, a JSON template with ``${placeholders}``."""
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


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]
"""Each section's name in the file and its dataclass."""


def field_types(cls: type) -> dict[str, Any]:
    """A section's keys and their types."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}
