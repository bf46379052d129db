"""Kafka client settings in one dialect: the Java client's names.

``kafka.client`` is written the way Spark users already write Kafka settings, with the
Java client's names (``security.protocol``, ``sasl.mechanism``, ``sasl.jaas.config``,
``ssl.truststore.location`` ...). The jvm backend hands them to Spark's source and sink as
``kafka.<name>`` (:func:`to_spark_options`); every confluent-kafka client streamer builds
(the python backend, and the admin, offset and sample clients on the driver) gets them
translated by :func:`to_librdkafka`, through :data:`TABLE`. :func:`validate` runs when the
config is loaded, so a librdkafka name, an unknown name or a bad JAAS line stops start-up
with one line naming the key and what to write instead, and never the value.

:data:`TABLE` has a rule for every setting of the Java consumer, producer and admin
client (kafka-clients 3.9 and 4.1): a librdkafka name (the value passes unchanged), a
converter (the value, or several settings together, become librdkafka settings),
:data:`JVM_ONLY` (tuning or metrics that librdkafka does without; dropped for it), or
``refused`` (it changes who logs in or how TLS is checked, and librdkafka has no
equivalent: a librdkafka client refuses to start rather than run without it).
:data:`MANAGED` settings are set by Spark or streamer and refused in ``kafka.client``.
docs/kafka-client-settings.md is the same table for users.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from streamer.kafka.dialect.converters import LIBRDKAFKA, STORE_TYPES, store_type
from streamer.kafka.dialect.jaas import MECHANISMS, JaasEntry, parse_jaas
from streamer.kafka.dialect.rules import DOCS, JVM_ONLY, ClientSettingError, Rule, fail, setting
from streamer.kafka.dialect.table import LIBRDKAFKA_NAMES, MANAGED, TABLE

__all__ = [
    "DOCS",
    "JVM_ONLY",
    "LIBRDKAFKA_NAMES",
    "MANAGED",
    "TABLE",
    "ClientSettingError",
    "JaasEntry",
    "Rule",
    "parse_jaas",
    "to_librdkafka",
    "to_spark_options",
    "validate",
]


def _check_names(client: Mapping[str, Any]) -> None:
    for key in client:
        if key in TABLE:
            continue
        if key in LIBRDKAFKA_NAMES:
            raise fail(key, f"is librdkafka's name; {LIBRDKAFKA_NAMES[key]} (see {DOCS})")
        close = difflib.get_close_matches(key, list(TABLE), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise fail(key, f"is not a Java Kafka client setting{hint} (see {DOCS})")


def validate(client: Mapping[str, Any]) -> None:
    """Check ``kafka.client`` for either backend: Java client names only, none that Spark
    or streamer set, a JAAS line Java would parse, and values both clients take. Raises
    :class:`ClientSettingError` with one line naming the key; never a value."""
    _check_names(client)
    for key in client:
        if key in MANAGED:
            raise fail(key, MANAGED[key])
    for store in ("truststore", "keystore"):
        key = f"ssl.{store}.type"
        if key in client and store_type(client, store) not in STORE_TYPES:
            raise fail(key, f"must be one of {', '.join(STORE_TYPES)}")
    for key, store in (
        ("ssl.truststore.certificates", "truststore"),
        ("ssl.keystore.certificate.chain", "keystore"),
        ("ssl.keystore.key", "keystore"),
    ):
        if key in client and store_type(client, store) != "PEM":
            raise fail(key, f"holds PEM text; it needs ssl.{store}.type: PEM")
    algorithm = setting(client, "ssl.endpoint.identification.algorithm", "https").strip().lower()
    if algorithm == "none":
        raise fail(
            "ssl.endpoint.identification.algorithm",
            "is 'none', librdkafka's spelling; the Java client's is '' (an empty string)",
        )
    if algorithm not in ("", "https"):
        raise fail(
            "ssl.endpoint.identification.algorithm",
            "must be https (check the broker's host name) or '' (do not)",
        )
    if "sasl.jaas.config" in client:
        entry = parse_jaas(setting(client, "sasl.jaas.config"))
        mechanism = setting(client, "sasl.mechanism", "GSSAPI").strip().upper()
        serves = MECHANISMS.get(entry.module)
        if serves is not None and mechanism not in serves:
            raise fail(
                "sasl.mechanism",
                f"is {mechanism if mechanism else 'empty'} (GSSAPI when unset) but "
                f"sasl.jaas.config uses {entry.module.rsplit('.', 1)[-1]}; set sasl.mechanism: "
                f"{' or '.join(serves)}",
            )


def to_librdkafka(client: Mapping[str, Any]) -> dict[str, Any]:
    """``kafka.client`` (Java client names) → confluent-kafka settings, through
    :data:`TABLE`. Raises :class:`ClientSettingError` for a name that is not a Java
    client setting, and for one librdkafka cannot honour (a JKS store, AWS MSK IAM, a
    Java class ...). Settings Spark or streamer manage pass through (streamer's own
    required settings override them)."""
    _check_names(client)
    out: dict[str, Any] = {}
    for key, value in client.items():
        rule = TABLE[key]
        if rule.librdkafka is not None:
            out[rule.librdkafka] = value
        elif rule.convert is not None:
            out.update(rule.convert(str(value), client))
        elif rule.refused is not None:
            raise fail(key, f"{rule.refused}, which {LIBRDKAFKA} cannot take")
    return out


def to_spark_options(client: Mapping[str, Any]) -> dict[str, str]:
    """``kafka.client`` → options for Spark's Kafka source and sink:
    ``{"kafka.<java name>": "<value>"}`` (booleans as ``true``/``false``)."""
    _check_names(client)
    return {
        f"kafka.{k}": (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in client.items()
    }
