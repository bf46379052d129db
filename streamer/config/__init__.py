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

The package: :mod:`~streamer.config.sections` (the dataclasses), :mod:`~streamer.config.loader`
(the layers, merged) and :mod:`~streamer.config.validation` (each key, then the rules across
keys).
"""

from streamer.config.loader import ENV_PREFIX, load_config
from streamer.config.sections import (
    Config,
    EmrConfig,
    FrozenMap,
    HandoffConfig,
    KafkaConfig,
    LoggingConfig,
    MetricsConfig,
    ModelConfig,
    OffsetsConfig,
    ParseConfig,
    ShadowConfig,
    SparkConfig,
    parse_trigger_seconds,
)
from streamer.config.validation import SOURCE_OPTIONS

__all__ = [
    "ENV_PREFIX",
    "SOURCE_OPTIONS",
    "Config",
    "EmrConfig",
    "FrozenMap",
    "HandoffConfig",
    "KafkaConfig",
    "LoggingConfig",
    "MetricsConfig",
    "ModelConfig",
    "OffsetsConfig",
    "ParseConfig",
    "ShadowConfig",
    "SparkConfig",
    "load_config",
    "parse_trigger_seconds",
]
