"""Reach Kafka once, fast, and say in one line why not.

librdkafka retries a refused connection, a failed TLS handshake or rejected credentials for
ever, logging each attempt to stderr, and a metadata call only ends with a generic
``Broker transport failure`` at its timeout. :func:`reach` asks for metadata in short
slices with librdkafka's log silenced and its error callback watched, so a wrong password or
an untrusted CA ends within a second or two, and a closed port within ``grace`` seconds,
each as one :class:`~streamer.errors.KafkaIOError` naming the cause and the setting to fix.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient, ClusterMetadata

from streamer.errors import KafkaIOError

_QUIET = logging.getLogger(f"{__name__}.librdkafka")
_QUIET.disabled = True

_FATAL = {
    KafkaError._AUTHENTICATION: (
        "Kafka at {servers} rejected the credentials: {reason}; check the username and "
        "password in kafka.client's sasl.jaas.config (and sasl.mechanism)"
    ),
    KafkaError._SSL: (
        "TLS with Kafka at {servers} failed: {reason}; check kafka.client's "
        "ssl.truststore.location (the CA that signed the broker's certificate) and "
        "security.protocol"
    ),
}
_DOWN = (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE)


def reach(
    bootstrap_servers: str,
    client: Mapping[str, Any],
    *,
    timeout: float = 15.0,
    grace: float = 5.0,
) -> ClusterMetadata:
    """Cluster metadata from ``bootstrap_servers`` with librdkafka settings ``client``.

    Rejected credentials and TLS failures raise at once; a broker that is down or
    unresolvable raises after ``grace`` seconds without an answer; anything else after
    ``timeout``."""
    errors: list[KafkaError] = []
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap_servers, **client}
    conf["error_cb"] = errors.append
    admin = AdminClient(conf, logger=_QUIET)
    started = time.monotonic()
    while True:
        try:
            return admin.list_topics(timeout=0.5)
        except Exception as exc:
            last: Exception = exc
        admin.poll(0)  # serves the error callback
        waited = time.monotonic() - started
        for error in errors:
            template = _FATAL.get(error.code())
            if template is not None:
                raise KafkaIOError(
                    template.format(servers=bootstrap_servers, reason=_reason(error))
                ) from last
        down = [e for e in errors if e.code() in _DOWN]
        if (down and waited >= grace) or waited >= timeout:
            reason = _reason(down[-1]) if down else str(last)
            raise KafkaIOError(
                f"cannot reach Kafka at kafka.bootstrap_servers = {bootstrap_servers!r} "
                f"within {waited:.0f}s: {reason}; is the broker up, and are "
                "kafka.bootstrap_servers and security.protocol right?"
            ) from last


def _reason(error: KafkaError) -> str:
    """librdkafka's text without its ``sasl_ssl://host:port/bootstrap:`` prefix."""
    text = error.str()
    _, sep, rest = text.partition("/bootstrap: ")
    return (rest if sep else text).strip()
