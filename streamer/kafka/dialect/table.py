"""The translation table as data: every Java client setting → its :class:`Rule`, the
settings Spark or streamer manage, and the librdkafka names users may carry over."""

from __future__ import annotations

from collections.abc import Mapping

from streamer.kafka.dialect.converters import (
    buffer_memory,
    client_handler,
    compression_level,
    endpoint_identification,
    jaas_config,
    key_password,
    keystore_location,
    keystore_password,
    login_handler,
    mechanism,
    retriever,
    socket_buffer,
    token_endpoint,
    truststore_certificates,
    truststore_location,
)
from streamer.kafka.dialect.rules import JVM_ONLY, Rule, converted, refused, rename

_SAME = (
    "acks",
    "allow.auto.create.topics",
    "auto.commit.interval.ms",
    "auto.offset.reset",
    "batch.size",
    "bootstrap.servers",
    "check.crcs",
    "client.dns.lookup",
    "client.id",
    "client.rack",
    "compression.type",
    "connections.max.idle.ms",
    "delivery.timeout.ms",
    "enable.auto.commit",
    "enable.idempotence",
    "enable.metrics.push",
    "fetch.max.bytes",
    "fetch.min.bytes",
    "group.id",
    "heartbeat.interval.ms",
    "isolation.level",
    "linger.ms",
    "max.in.flight.requests.per.connection",
    "max.partition.fetch.bytes",
    "max.poll.interval.ms",
    "metadata.recovery.rebootstrap.trigger.ms",
    "metadata.recovery.strategy",
    "reconnect.backoff.max.ms",
    "reconnect.backoff.ms",
    "retries",
    "retry.backoff.max.ms",
    "retry.backoff.ms",
    "sasl.kerberos.min.time.before.relogin",
    "sasl.kerberos.service.name",
    "sasl.oauthbearer.assertion.algorithm",
    "sasl.oauthbearer.assertion.claim.aud",
    "sasl.oauthbearer.assertion.claim.exp.seconds",
    "sasl.oauthbearer.assertion.claim.iss",
    "sasl.oauthbearer.assertion.claim.jti.include",
    "sasl.oauthbearer.assertion.claim.nbf.seconds",
    "sasl.oauthbearer.assertion.claim.sub",
    "sasl.oauthbearer.assertion.file",
    "sasl.oauthbearer.assertion.private.key.file",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.scope",
    "security.protocol",
    "session.timeout.ms",
    "socket.connection.setup.timeout.ms",
    "transaction.timeout.ms",
    "transactional.id",
)

_JVM_ONLY = (
    "auto.include.jmx.reporter",
    "default.api.timeout.ms",
    "exclude.internal.topics",
    "group.instance.id",  # streamer's consumers assign partitions; they never join a group
    "group.protocol",
    "group.remote.assignor",
    "interceptor.classes",
    "internal.leave.group.on.close",
    "internal.throw.on.fetch.stable.offset.unsupported",
    "key.deserializer",
    "key.serializer",
    "max.block.ms",  # librdkafka's produce() never blocks; streamer waits on a full queue
    "max.poll.records",
    "metadata.max.idle.ms",
    "metric.reporters",
    "metrics.num.samples",
    "metrics.recording.level",
    "metrics.sample.window.ms",
    "partition.assignment.strategy",
    "partitioner.adaptive.partitioning.enable",
    "partitioner.availability.timeout.ms",
    "partitioner.ignore.keys",
    "sasl.kerberos.kinit.cmd",  # librdkafka's is a whole command line, run with the keytab
    "sasl.kerberos.ticket.renew.jitter",
    "sasl.kerberos.ticket.renew.window.factor",
    "sasl.login.connect.timeout.ms",
    "sasl.login.read.timeout.ms",
    "sasl.login.refresh.buffer.seconds",
    "sasl.login.refresh.min.period.seconds",
    "sasl.login.refresh.window.factor",
    "sasl.login.refresh.window.jitter",
    "sasl.login.retry.backoff.max.ms",
    "sasl.login.retry.backoff.ms",
    "sasl.oauthbearer.clock.skew.seconds",  # the rest validate tokens; clients only fetch them
    "sasl.oauthbearer.expected.audience",
    "sasl.oauthbearer.expected.issuer",
    "sasl.oauthbearer.header.urlencode",
    "sasl.oauthbearer.jwks.endpoint.refresh.ms",
    "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
    "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms",
    "sasl.oauthbearer.jwks.endpoint.url",
    "sasl.oauthbearer.jwt.validator.class",
    "sasl.oauthbearer.scope.claim.name",
    "sasl.oauthbearer.sub.claim.name",
    "share.acknowledgement.mode",
    "socket.connection.setup.timeout.max.ms",
    "ssl.enabled.protocols",  # librdkafka negotiates TLS 1.2/1.3 through OpenSSL
    "ssl.keymanager.algorithm",
    "ssl.protocol",
    "ssl.provider",
    "ssl.secure.random.implementation",
    "ssl.trustmanager.algorithm",
    "ssl.truststore.password",  # PEM truststores have none
    "transaction.two.phase.commit.enable",
    "value.deserializer",
    "value.serializer",
)


def _table(*parts: Mapping[str, Rule]) -> dict[str, Rule]:
    """The parts joined; a setting in two of them is a mistake in this module."""
    table: dict[str, Rule] = {}
    for part in parts:
        twice = table.keys() & part.keys()
        if twice:
            raise AssertionError(f"kafka client settings with two rules: {sorted(twice)}")
        table.update(part)
    return table


TABLE: dict[str, Rule] = _table(
    {name: rename(name) for name in _SAME},
    dict.fromkeys(_JVM_ONLY, JVM_ONLY),
    {
        # renamed
        "fetch.max.wait.ms": rename("fetch.wait.max.ms"),
        "max.request.size": rename("message.max.bytes"),
        "metadata.max.age.ms": rename("topic.metadata.refresh.interval.ms"),
        "request.timeout.ms": rename("socket.timeout.ms"),
        "sasl.oauthbearer.assertion.template.file": rename(
            "sasl.oauthbearer.assertion.jwt.template.file"
        ),
        "sasl.oauthbearer.client.credentials.client.id": rename("sasl.oauthbearer.client.id"),
        "sasl.oauthbearer.client.credentials.client.secret": rename(
            "sasl.oauthbearer.client.secret"
        ),
        "ssl.keystore.certificate.chain": rename("ssl.certificate.pem"),
        "ssl.keystore.key": rename("ssl.key.pem"),
        # converted
        "buffer.memory": converted(buffer_memory),
        "compression.gzip.level": converted(compression_level("gzip")),
        "compression.lz4.level": converted(compression_level("lz4")),
        "compression.zstd.level": converted(compression_level("zstd")),
        "receive.buffer.bytes": converted(
            socket_buffer("receive.buffer.bytes", "socket.receive.buffer.bytes")
        ),
        "send.buffer.bytes": converted(
            socket_buffer("send.buffer.bytes", "socket.send.buffer.bytes")
        ),
        "sasl.client.callback.handler.class": converted(client_handler),
        "sasl.jaas.config": converted(jaas_config),
        "sasl.login.callback.handler.class": converted(login_handler),
        "sasl.mechanism": converted(mechanism),
        "sasl.oauthbearer.jwt.retriever.class": converted(retriever),
        "sasl.oauthbearer.token.endpoint.url": converted(token_endpoint),
        "ssl.endpoint.identification.algorithm": converted(endpoint_identification),
        "ssl.key.password": converted(key_password),
        "ssl.keystore.location": converted(keystore_location),
        "ssl.keystore.password": converted(keystore_password),
        "ssl.keystore.type": converted(lambda value, client: {}),  # read by the keystore rules
        "ssl.truststore.certificates": converted(truststore_certificates),
        "ssl.truststore.location": converted(truststore_location),
        "ssl.truststore.type": converted(lambda value, client: {}),  # read by the truststore rules
        # refused for librdkafka
        "bootstrap.controllers": refused("talks to KRaft controllers; streamer talks to brokers"),
        "partitioner.class": refused("names a Java partitioner class"),
        "sasl.login.class": refused("names a Java login class"),
        "security.providers": refused("names Java security providers"),
        "ssl.cipher.suites": refused(
            "lists Java (IANA) cipher suite names; OpenSSL, under librdkafka, names them otherwise"
        ),
        "ssl.engine.factory.class": refused("names a Java SSL engine factory"),
    },
)
"""Every Java client setting → how it reaches librdkafka (see the module docstring)."""

MANAGED: dict[str, str] = {
    "bootstrap.servers": "is set from kafka.bootstrap_servers; set that instead",
    "bootstrap.controllers": (
        "is not for streamer, which talks to brokers: set kafka.bootstrap_servers"
    ),
    "group.id": (
        "is chosen by streamer for each of its consumers; to keep offsets in a consumer "
        "group set offsets.store: kafka-group and offsets.group_id"
    ),
    "auto.offset.reset": "is set by streamer; use kafka.starting_offsets",
    "enable.auto.commit": "is set by streamer, which stores offsets itself (offsets.store)",
    "key.serializer": "is set by Spark and streamer, which write bytes",
    "value.serializer": "is set by Spark and streamer, which write bytes",
    "key.deserializer": "is set by Spark and streamer, which read bytes",
    "value.deserializer": "is set by Spark and streamer, which read bytes",
    "interceptor.classes": "is refused by Spark's Kafka source",
    "transactional.id": "does not apply: streamer's sinks are at-least-once, without transactions",
    "transaction.timeout.ms": "does not apply: streamer's sinks use no transactions",
    "transaction.two.phase.commit.enable": "does not apply: streamer's sinks use no transactions",
    "internal.leave.group.on.close": "is internal to the Java client",
    "internal.throw.on.fetch.stable.offset.unsupported": "is internal to the Java client",
}
"""Settings Spark or streamer set themselves: :func:`validate` refuses them in kafka.client."""

_JAAS_EXAMPLE = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'username="..." password="...";'
)
_WRITE_JAAS = f"write sasl.jaas.config (Java client name), e.g. {_JAAS_EXAMPLE}"
_WRITE_OAUTH_JAAS = (
    "write sasl.jaas.config: org.apache.kafka.common.security.oauthbearer."
    'OAuthBearerLoginModule required clientId="..." clientSecret="..." scope="...";'
)
_WRITE_TRUSTSTORE = "use ssl.truststore.location with ssl.truststore.type: PEM"

LIBRDKAFKA_NAMES: dict[str, str] = {
    "sasl.username": _WRITE_JAAS,
    "sasl.password": _WRITE_JAAS,
    "sasl.mechanisms": "write sasl.mechanism",
    "sasl.kerberos.keytab": (
        "write sasl.jaas.config: com.sun.security.auth.module.Krb5LoginModule required "
        'useKeyTab=true keyTab="..." principal="...";'
    ),
    "sasl.kerberos.principal": 'write principal="..." in sasl.jaas.config (Krb5LoginModule)',
    "sasl.oauthbearer.method": "drop it; sasl.oauthbearer.token.endpoint.url implies oidc",
    "sasl.oauthbearer.client.id": _WRITE_OAUTH_JAAS,
    "sasl.oauthbearer.client.secret": _WRITE_OAUTH_JAAS,
    "sasl.oauthbearer.extensions": 'write extension_<name>="..." in sasl.jaas.config',
    "sasl.oauthbearer.config": (
        "write the OAuthBearerLoginModule options in sasl.jaas.config (clientId, "
        "clientSecret, scope, or unsecuredLoginStringClaim_sub for unsecured JWTs)"
    ),
    "enable.sasl.oauthbearer.unsecure.jwt": (
        'write unsecuredLoginStringClaim_sub="..." in sasl.jaas.config (OAuthBearerLoginModule)'
    ),
    "sasl.oauthbearer.grant.type": (
        "write sasl.oauthbearer.jwt.retriever.class: "
        "org.apache.kafka.common.security.oauthbearer.JwtBearerJwtRetriever"
    ),
    "sasl.oauthbearer.assertion.jwt.template.file": (
        "write sasl.oauthbearer.assertion.template.file"
    ),
    "sasl.oauthbearer.assertion.private.key.pem": (
        "write sasl.oauthbearer.assertion.private.key.file (the key in a file)"
    ),
    "ssl.ca.location": _WRITE_TRUSTSTORE,
    "ssl.ca.pem": "use ssl.truststore.certificates with ssl.truststore.type: PEM",
    "ssl_ca": _WRITE_TRUSTSTORE,
    "ssl.certificate.location": (
        "use ssl.keystore.location with ssl.keystore.type: PKCS12 (or PEM: key and "
        "certificate chain in one file)"
    ),
    "ssl.key.location": (
        "use ssl.keystore.location with ssl.keystore.type: PKCS12 (or PEM: key and "
        "certificate chain in one file)"
    ),
    "ssl.certificate.pem": "use ssl.keystore.certificate.chain with ssl.keystore.type: PEM",
    "ssl.key.pem": "use ssl.keystore.key with ssl.keystore.type: PEM",
    "enable.ssl.certificate.verification": (
        "has no Java client equivalent; trust the broker's CA with ssl.truststore.location"
    ),
    "queue.buffering.max.ms": "write linger.ms",
    "queue.buffering.max.kbytes": "write buffer.memory (bytes)",
    "queue.buffering.max.messages": "has no Java client equivalent; write buffer.memory (bytes)",
    "batch.num.messages": "write batch.size (bytes)",
    "compression.codec": "write compression.type",
    "compression.level": (
        "write compression.gzip.level, compression.lz4.level or compression.zstd.level"
    ),
    "request.required.acks": "write acks",
    "message.max.bytes": "write max.request.size",
    "message.timeout.ms": "write delivery.timeout.ms",
    "message.send.max.retries": "write retries",
    "fetch.wait.max.ms": "write fetch.max.wait.ms",
    "fetch.message.max.bytes": "write max.partition.fetch.bytes",
    "socket.timeout.ms": "write request.timeout.ms",
    "socket.receive.buffer.bytes": "write receive.buffer.bytes",
    "socket.send.buffer.bytes": "write send.buffer.bytes",
    "topic.metadata.refresh.interval.ms": "write metadata.max.age.ms",
    "metadata.broker.list": "set kafka.bootstrap_servers",
    "partitioner": "has no Java client equivalent (partitioner.class names a Java class)",
    "queued.min.messages": "has no Java client equivalent; streamer tunes its consumers itself",
    "queued.max.messages.kbytes": "write fetch.max.bytes",
    "fetch.queue.backoff.ms": "has no Java client equivalent; streamer tunes its consumers itself",
    "socket.keepalive.enable": "has no Java client equivalent",
    "debug": "has no Java client equivalent (the Java client logs through log4j)",
    "statistics.interval.ms": "has no Java client equivalent; use metrics.sample.window.ms",
    "api.version.request": "has no Java client equivalent (the Java client always asks)",
    "broker.version.fallback": "has no Java client equivalent (the Java client always asks)",
    "max.in.flight": "write max.in.flight.requests.per.connection",
}
"""librdkafka names users may carry over → what to write instead, for :func:`validate`."""
