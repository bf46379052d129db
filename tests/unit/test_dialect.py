"""``kafka.client`` in the Java client's names: the table, the translation to librdkafka,
the Spark options, and the checks at config load."""

import re
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, Producer

from streamer.kafka import dialect
from streamer.kafka.admin import client_config
from streamer.kafka.dialect import (
    ClientSettingError,
    parse_jaas,
    to_librdkafka,
    to_spark_options,
    validate,
)

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hunter2"

# Every setting of the Java consumer, producer and admin client, kafka-clients 3.9.2 and
# 4.1.1 (ConsumerConfig/ProducerConfig/AdminClientConfig.configDef().names()).
_JAVA_CLIENT_SETTINGS = """
    acks allow.auto.create.topics auto.commit.interval.ms auto.include.jmx.reporter
    auto.offset.reset batch.size bootstrap.controllers bootstrap.servers buffer.memory
    check.crcs client.dns.lookup client.id client.rack compression.gzip.level
    compression.lz4.level compression.type compression.zstd.level
    connections.max.idle.ms default.api.timeout.ms delivery.timeout.ms
    enable.auto.commit enable.idempotence enable.metrics.push exclude.internal.topics
    fetch.max.bytes fetch.max.wait.ms fetch.min.bytes group.id group.instance.id
    group.protocol group.remote.assignor heartbeat.interval.ms interceptor.classes
    internal.leave.group.on.close internal.throw.on.fetch.stable.offset.unsupported
    isolation.level key.deserializer key.serializer linger.ms max.block.ms
    max.in.flight.requests.per.connection max.partition.fetch.bytes max.poll.interval.ms
    max.poll.records max.request.size metadata.max.age.ms metadata.max.idle.ms
    metadata.recovery.rebootstrap.trigger.ms metadata.recovery.strategy metric.reporters
    metrics.num.samples metrics.recording.level metrics.sample.window.ms
    partition.assignment.strategy partitioner.adaptive.partitioning.enable
    partitioner.availability.timeout.ms partitioner.class partitioner.ignore.keys
    receive.buffer.bytes reconnect.backoff.max.ms reconnect.backoff.ms
    request.timeout.ms retries retry.backoff.max.ms retry.backoff.ms
    sasl.client.callback.handler.class sasl.jaas.config sasl.kerberos.kinit.cmd
    sasl.kerberos.min.time.before.relogin sasl.kerberos.service.name
    sasl.kerberos.ticket.renew.jitter sasl.kerberos.ticket.renew.window.factor
    sasl.login.callback.handler.class sasl.login.class sasl.login.connect.timeout.ms
    sasl.login.read.timeout.ms sasl.login.refresh.buffer.seconds
    sasl.login.refresh.min.period.seconds sasl.login.refresh.window.factor
    sasl.login.refresh.window.jitter sasl.login.retry.backoff.max.ms
    sasl.login.retry.backoff.ms sasl.mechanism sasl.oauthbearer.assertion.algorithm
    sasl.oauthbearer.assertion.claim.aud sasl.oauthbearer.assertion.claim.exp.seconds
    sasl.oauthbearer.assertion.claim.iss sasl.oauthbearer.assertion.claim.jti.include
    sasl.oauthbearer.assertion.claim.nbf.seconds sasl.oauthbearer.assertion.claim.sub
    sasl.oauthbearer.assertion.file sasl.oauthbearer.assertion.private.key.file
    sasl.oauthbearer.assertion.private.key.passphrase
    sasl.oauthbearer.assertion.template.file
    sasl.oauthbearer.client.credentials.client.id
    sasl.oauthbearer.client.credentials.client.secret
    sasl.oauthbearer.clock.skew.seconds sasl.oauthbearer.expected.audience
    sasl.oauthbearer.expected.issuer sasl.oauthbearer.header.urlencode
    sasl.oauthbearer.jwks.endpoint.refresh.ms
    sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms
    sasl.oauthbearer.jwks.endpoint.retry.backoff.ms sasl.oauthbearer.jwks.endpoint.url
    sasl.oauthbearer.jwt.retriever.class sasl.oauthbearer.jwt.validator.class
    sasl.oauthbearer.scope sasl.oauthbearer.scope.claim.name
    sasl.oauthbearer.sub.claim.name sasl.oauthbearer.token.endpoint.url
    security.protocol security.providers send.buffer.bytes session.timeout.ms
    share.acknowledgement.mode socket.connection.setup.timeout.max.ms
    socket.connection.setup.timeout.ms ssl.cipher.suites ssl.enabled.protocols
    ssl.endpoint.identification.algorithm ssl.engine.factory.class ssl.key.password
    ssl.keymanager.algorithm ssl.keystore.certificate.chain ssl.keystore.key
    ssl.keystore.location ssl.keystore.password ssl.keystore.type ssl.protocol
    ssl.provider ssl.secure.random.implementation ssl.trustmanager.algorithm
    ssl.truststore.certificates ssl.truststore.location ssl.truststore.password
    ssl.truststore.type transaction.timeout.ms transaction.two.phase.commit.enable
    transactional.id value.deserializer value.serializer
"""
JAVA_CLIENT_SETTINGS = _JAVA_CLIENT_SETTINGS.split()

PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"
OAUTH = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
IAM = "software.amazon.msk.auth.iam.IAMLoginModule"
OIDC_HANDLER = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler"


def test_table_covers_exactly_the_java_client_settings():
    assert sorted(dialect.TABLE) == sorted(JAVA_CLIENT_SETTINGS)
    assert set(dialect.MANAGED) <= set(dialect.TABLE)
    assert not set(dialect.LIBRDKAFKA_NAMES) & set(dialect.TABLE)


def test_each_rule_does_one_thing():
    for name, rule in dialect.TABLE.items():
        kinds = [rule.librdkafka is not None, rule.convert is not None, rule.jvm_only]
        kinds.append(rule.refused is not None)
        assert sum(kinds) == 1, name


TRANSLATIONS = [  # (Java client settings, librdkafka settings)
    (
        {"acks": "all", "linger.ms": "5", "client.id": "s"},
        {"acks": "all", "linger.ms": "5", "client.id": "s"},
    ),
    ({"fetch.max.wait.ms": "50"}, {"fetch.wait.max.ms": "50"}),
    ({"max.request.size": "2097152"}, {"message.max.bytes": "2097152"}),
    ({"request.timeout.ms": "30000"}, {"socket.timeout.ms": "30000"}),
    ({"metadata.max.age.ms": "60000"}, {"topic.metadata.refresh.interval.ms": "60000"}),
    ({"buffer.memory": "33554432"}, {"queue.buffering.max.kbytes": 32768}),
    ({"buffer.memory": "1500"}, {"queue.buffering.max.kbytes": 2}),
    (
        {"receive.buffer.bytes": "-1", "send.buffer.bytes": "131072"},
        {"socket.receive.buffer.bytes": 0, "socket.send.buffer.bytes": 131072},
    ),
    (
        {"compression.type": "zstd", "compression.zstd.level": "3", "compression.gzip.level": "9"},
        {"compression.type": "zstd", "compression.level": "3"},
    ),
    ({"max.block.ms": "1", "max.poll.records": "9", "ssl.enabled.protocols": "TLSv1.3"}, {}),
    (
        {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "plain",
            "sasl.jaas.config": f'{PLAIN} required username="u" password="{SECRET}";',
        },
        {
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "PLAIN",
            "sasl.username": "u",
            "sasl.password": SECRET,
        },
    ),
    (
        {
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.jaas.config": f"{SCRAM} required\n  username='u'\n  password='p;=/ \\'q\\'';",
        },
        {"sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "u", "sasl.password": "p;=/ 'q'"},
    ),
    (
        {
            "sasl.mechanism": "OAUTHBEARER",
            "sasl.login.callback.handler.class": OIDC_HANDLER,
            "sasl.oauthbearer.token.endpoint.url": "https://idp/token",
            "sasl.jaas.config": f'{OAUTH} required clientId="c" clientSecret="s" scope="k" '
            'extension_logicalCluster="lkc-1" extension_identityPoolId="p-2";',
        },
        {
            "sasl.mechanisms": "OAUTHBEARER",
            "sasl.oauthbearer.method": "oidc",
            "sasl.oauthbearer.token.endpoint.url": "https://idp/token",
            "sasl.oauthbearer.client.id": "c",
            "sasl.oauthbearer.client.secret": "s",
            "sasl.oauthbearer.scope": "k",
            "sasl.oauthbearer.extensions": "logicalCluster=lkc-1,identityPoolId=p-2",
        },
    ),
    (
        {
            "sasl.oauthbearer.jwt.retriever.class": "org.apache.kafka.common.security.oauthbearer.JwtBearerJwtRetriever",
            "sasl.oauthbearer.assertion.private.key.file": "/k.pem",
            "sasl.oauthbearer.assertion.private.key.passphrase": SECRET,
            "sasl.oauthbearer.assertion.template.file": "/t.json",
            "sasl.oauthbearer.client.credentials.client.id": "c",
        },
        {
            "sasl.oauthbearer.grant.type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "sasl.oauthbearer.assertion.private.key.file": "/k.pem",
            "sasl.oauthbearer.assertion.private.key.passphrase": SECRET,
            "sasl.oauthbearer.assertion.jwt.template.file": "/t.json",
            "sasl.oauthbearer.client.id": "c",
        },
    ),
    (
        {
            "sasl.jaas.config": f'{OAUTH} required unsecuredLoginStringClaim_sub="alice" '
            'unsecuredLoginListClaim_scope=",a,b";'
        },
        {
            "enable.sasl.oauthbearer.unsecure.jwt": "true",
            "sasl.oauthbearer.config": "principal=alice scope=a,b",
        },
    ),
    (
        {
            "sasl.jaas.config": "com.sun.security.auth.module.Krb5LoginModule required "
            'useKeyTab=true keyTab="/etc/k.keytab" principal="svc@EX.COM";'
        },
        {"sasl.kerberos.keytab": "/etc/k.keytab", "sasl.kerberos.principal": "svc@EX.COM"},
    ),
    (
        {
            "ssl.truststore.type": "pem",
            "ssl.truststore.location": "/ca.pem",
            "ssl.truststore.password": "ignored",
        },
        {"ssl.ca.location": "/ca.pem"},
    ),
    (
        {"ssl.truststore.type": "PEM", "ssl.truststore.certificates": "-----BEGIN..."},
        {"ssl.ca.pem": "-----BEGIN..."},
    ),
    (
        {
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": "/ks.p12",
            "ssl.keystore.password": SECRET,
            "ssl.key.password": SECRET,
        },
        {"ssl.keystore.location": "/ks.p12", "ssl.keystore.password": SECRET},
    ),
    (
        {
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": "/both.pem",
            "ssl.key.password": SECRET,
        },
        {
            "ssl.certificate.location": "/both.pem",
            "ssl.key.location": "/both.pem",
            "ssl.key.password": SECRET,
        },
    ),
    (
        {
            "ssl.keystore.type": "PEM",
            "ssl.keystore.certificate.chain": "C",
            "ssl.keystore.key": "K",
        },
        {"ssl.certificate.pem": "C", "ssl.key.pem": "K"},
    ),
    (
        {"ssl.endpoint.identification.algorithm": ""},
        {"ssl.endpoint.identification.algorithm": "none"},
    ),
    (
        {"ssl.endpoint.identification.algorithm": "HTTPS"},
        {"ssl.endpoint.identification.algorithm": "https"},
    ),
]


@pytest.mark.parametrize("client,expected", TRANSLATIONS)
def test_to_librdkafka(client, expected):
    assert to_librdkafka(client) == expected


@pytest.mark.parametrize(
    "client,key,says",
    [
        (
            {"ssl.truststore.location": "/ts.jks"},
            "ssl.truststore.location",
            "librdkafka cannot read: export the CA certificates to a PEM file",
        ),
        (
            {"ssl.truststore.type": "PKCS12", "ssl.truststore.location": "/ts.p12"},
            "ssl.truststore.location",
            "reads CA certificates only as PEM",
        ),
        (
            {"ssl.keystore.location": "/ks.jks", "ssl.keystore.password": SECRET},
            "ssl.keystore.location",
            "-deststoretype PKCS12",
        ),
        (
            {
                "ssl.keystore.type": "PKCS12",
                "ssl.keystore.location": "/k",
                "ssl.keystore.password": "a",
                "ssl.key.password": SECRET,
            },
            "ssl.key.password",
            "differs from ssl.keystore.password",
        ),
        ({"sasl.mechanism": "AWS_MSK_IAM"}, "sasl.mechanism", "aws-msk-iam-auth"),
        ({"sasl.jaas.config": f"{IAM} required;"}, "sasl.jaas.config", "aws-msk-iam-auth"),
        (
            {
                "sasl.client.callback.handler.class": "software.amazon.msk.auth.iam.IAMClientCallbackHandler"
            },
            "sasl.client.callback.handler.class",
            "AWS MSK IAM",
        ),
        (
            {
                "sasl.jaas.config": f'org.example.auth.CustomLoginModule required password="{SECRET}";'
            },
            "sasl.jaas.config",
            "uses org.example.auth.CustomLoginModule, which librdkafka cannot run",
        ),
        (
            {
                "sasl.jaas.config": f'{SCRAM} required username="u" password="{SECRET}" tokenauth="true";'
            },
            "sasl.jaas.config",
            "delegation token",
        ),
        (
            {"sasl.login.callback.handler.class": "com.example.Handler"},
            "sasl.login.callback.handler.class",
            "only OAuthBearerLoginCallbackHandler",
        ),
        (
            {"sasl.oauthbearer.token.endpoint.url": "file:///token.jwt"},
            "sasl.oauthbearer.token.endpoint.url",
            "cannot read a token from a file",
        ),
        ({"sasl.mechanism": "NTLM"}, "sasl.mechanism", "it takes PLAIN, SCRAM-SHA-256"),
        ({"ssl.cipher.suites": "TLS_AES_128_GCM_SHA256"}, "ssl.cipher.suites", "IANA"),
        ({"partitioner.class": "com.example.P"}, "partitioner.class", "Java partitioner class"),
        ({"buffer.memory": "lots"}, "buffer.memory", "must be a whole number"),
        ({"sasl.password": SECRET}, "sasl.password", "is librdkafka's name"),
    ],
)
def test_to_librdkafka_refuses_what_librdkafka_cannot_do(client, key, says):
    with pytest.raises(ClientSettingError) as info:
        to_librdkafka(client)
    assert info.value.key == key
    assert str(info.value).startswith(f"kafka.client.{key} ")
    assert says in str(info.value)
    assert SECRET not in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "client,key,says",
    [
        (
            {"sasl.password": SECRET},
            "sasl.password",
            "is librdkafka's name; write sasl.jaas.config (Java client name)",
        ),
        ({"sasl.username": "u"}, "sasl.username", "write sasl.jaas.config"),
        (
            {"ssl.ca.location": "/ca.pem"},
            "ssl.ca.location",
            "use ssl.truststore.location with ssl.truststore.type: PEM",
        ),
        ({"sasl.mechanisms": "PLAIN"}, "sasl.mechanisms", "write sasl.mechanism"),
        (
            {"sasl.oauthbearer.config": f"clientSecret={SECRET}"},
            "sasl.oauthbearer.config",
            "OAuthBearerLoginModule options in sasl.jaas.config",
        ),
        ({"batch.num.messages": "10000"}, "batch.num.messages", "write batch.size (bytes)"),
        ({"queue.buffering.max.ms": "5"}, "queue.buffering.max.ms", "write linger.ms"),
        ({"debug": "all"}, "debug", "no Java client equivalent"),
        (
            {"sasl.jass.config": SECRET},
            "sasl.jass.config",
            "is not a Java Kafka client setting; did you mean sasl.jaas.config?",
        ),
        ({"bootstrap.servers": "b:9092"}, "bootstrap.servers", "kafka.bootstrap_servers"),
        ({"group.id": "g"}, "group.id", "offsets.group_id"),
        ({"auto.offset.reset": "latest"}, "auto.offset.reset", "kafka.starting_offsets"),
        ({"key.serializer": "x"}, "key.serializer", "set by Spark and streamer"),
        ({"transactional.id": "t"}, "transactional.id", "without transactions"),
        (
            {"ssl.endpoint.identification.algorithm": "none"},
            "ssl.endpoint.identification.algorithm",
            "the Java client's is ''",
        ),
        ({"ssl.truststore.type": "P12"}, "ssl.truststore.type", "one of JKS, PKCS12, PEM"),
        (
            {"ssl.truststore.certificates": "-----BEGIN"},
            "ssl.truststore.certificates",
            "needs ssl.truststore.type: PEM",
        ),
        ({"ssl.keystore.key": SECRET}, "ssl.keystore.key", "needs ssl.keystore.type: PEM"),
        (
            {
                "sasl.mechanism": "SCRAM-SHA-256",
                "sasl.jaas.config": f'{PLAIN} required username="u" password="{SECRET}";',
            },
            "sasl.mechanism",
            "sasl.jaas.config uses PlainLoginModule; set sasl.mechanism: PLAIN",
        ),
        (
            {"sasl.jaas.config": f'{PLAIN} required username="u" password="{SECRET}";'},
            "sasl.mechanism",
            "(GSSAPI when unset)",
        ),
        (
            {
                "sasl.mechanism": "PLAIN",
                "sasl.jaas.config": f'{PLAIN} required password="{SECRET}"',
            },
            "sasl.jaas.config",
            "does not end with ';'",
        ),
        (
            {
                "sasl.mechanism": "PLAIN",
                "sasl.jaas.config": f'{PLAIN} username="u" password="{SECRET}";',
            },
            "sasl.jaas.config",
            "no control flag",
        ),
        (
            {
                "sasl.mechanism": "PLAIN",
                "sasl.jaas.config": f'{PLAIN} required username="u" {SECRET};',
            },
            "sasl.jaas.config",
            "option 2 is not name=value",
        ),
        (
            {
                "sasl.mechanism": "PLAIN",
                "sasl.jaas.config": f"{PLAIN} required password={SECRET}:x;",
            },
            "sasl.jaas.config",
            "quote it",
        ),
        (
            {
                "sasl.mechanism": "PLAIN",
                "sasl.jaas.config": f'{PLAIN} required password="{SECRET};',
            },
            "sasl.jaas.config",
            'closing " is missing',
        ),
        (
            {
                "sasl.mechanism": "PLAIN",
                "sasl.jaas.config": f'{PLAIN} required password="{SECRET}"; {PLAIN} required;',
            },
            "sasl.jaas.config",
            "more than one login module",
        ),
        (
            {"sasl.jaas.config": f"{SECRET}"},
            "sasl.jaas.config",
            "does not start with a login module",
        ),
    ],
)
def test_validate_names_the_key_and_the_fix_and_never_the_value(client, key, says):
    with pytest.raises(ClientSettingError) as info:
        validate(client)
    message = str(info.value)
    assert info.value.key == key and message.startswith(f"kafka.client.{key} ")
    assert says in message
    assert SECRET not in message and "\n" not in message


@pytest.mark.parametrize(
    "client",
    [
        {},
        {
            "security.protocol": "SSL",
            "ssl.truststore.location": "/ts.jks",
            "ssl.truststore.password": SECRET,
        },  # JKS: fine for the jvm backend
        {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "AWS_MSK_IAM",
            "sasl.jaas.config": f"{IAM} required;",
            "sasl.client.callback.handler.class": "software.amazon.msk.auth.iam.IAMClientCallbackHandler",
        },
        {
            "sasl.mechanism": "PLAIN",
            "sasl.jaas.config": f'/* c */ {PLAIN} REQUIRED // note\n username="u" password="{SECRET}" ;',
        },
        {"ssl.endpoint.identification.algorithm": "", "linger.ms": 5, "enable.idempotence": True},
    ],
)
def test_validate_accepts_what_the_java_client_takes(client):
    validate(client)


@pytest.mark.parametrize(
    "text,module,options",
    [
        (f'{PLAIN} required username="u" password="p";', PLAIN, {"username": "u", "password": "p"}),
        (
            f"{PLAIN} required username=u password=x-1.2_$;",
            PLAIN,
            {"username": "u", "password": "x-1.2_$"},
        ),
        (
            f'{PLAIN} required username = "u"  password = "p" ;',
            PLAIN,
            {"username": "u", "password": "p"},
        ),
        (
            f'{PLAIN} required password="tab\\there\\101\\7 \\"q\\" \\\\";',
            PLAIN,
            {"password": 'tab\there\x41\x07 "q" \\'},
        ),
        (
            f"{PLAIN} required password='it\"s' x=\"it's\";",
            PLAIN,
            {"password": 'it"s', "x": "it's"},
        ),
        (f'"{PLAIN}" optional password="çø€";', PLAIN, {"password": "çø€"}),
        (f"{PLAIN} required;", PLAIN, {}),
    ],
)
def test_parse_jaas_reads_what_java_reads(text, module, options):
    # Expected values checked against kafka-clients 3.9.2 and 4.1.1 (JaasContext).
    entry = parse_jaas(text)
    assert (entry.module, entry.options) == (module, options)


@pytest.mark.parametrize(
    "text",
    [
        "",
        f"{PLAIN} required username=u password=3600;",  # Java reads a number: no value
        f"{PLAIN} required username=u password=-x;",
        f"{PLAIN} required username=u password=a/b;",  # "/" starts a comment
        f"{PLAIN} required username=u password=a:b;",
        f'{PLAIN} required username="u" password="p";extra',
    ],
)
def test_parse_jaas_refuses_what_java_refuses(text):
    with pytest.raises(ClientSettingError):
        parse_jaas(text)


def test_to_spark_options_prefixes_java_names_and_refuses_librdkafka_names():
    client = {"security.protocol": "SASL_SSL", "linger.ms": 5, "enable.idempotence": True}
    assert to_spark_options(client) == {
        "kafka.security.protocol": "SASL_SSL",
        "kafka.linger.ms": "5",
        "kafka.enable.idempotence": "true",
    }
    with pytest.raises(ClientSettingError, match=r"kafka\.client\.sasl\.password is librdkafka"):
        to_spark_options({"sasl.password": SECRET})


def test_client_config_merges_defaults_then_user_then_required():
    conf = client_config(
        "b:1",
        {"linger.ms": "50", "fetch.max.wait.ms": "7", "ssl.endpoint.identification.algorithm": ""},
        defaults={"linger.ms": 5, "fetch.wait.max.ms": 10, "queue.buffering.max.messages": 9},
        group_id="streamer-reader",
        enable_auto_commit=False,
    )
    assert conf == {
        "linger.ms": "50",
        "fetch.wait.max.ms": "7",
        "queue.buffering.max.messages": 9,
        "ssl.endpoint.identification.algorithm": "none",
        "bootstrap.servers": "b:1",
        "group.id": "streamer-reader",
        "enable.auto.commit": False,
    }


def test_every_name_produced_is_a_librdkafka_setting():
    names = {r.librdkafka for r in dialect.TABLE.values() if r.librdkafka is not None}
    names.update(name for _, expected in TRANSLATIONS for name in expected)
    assert len(names) > 60
    unknown = []
    for name in sorted(names):
        try:  # a bad value is fine here; an unknown name is not
            Producer({name: "\x01"})
        except KafkaException as exc:
            if "No such configuration property" in str(exc):
                unknown.append(name)
    assert unknown == []


def test_docs_list_every_setting():
    page = (ROOT / dialect.DOCS).read_text()
    named = set(re.findall(r"`([a-z_][a-z0-9_.]*)`", page))
    assert set(dialect.TABLE) - named == set()
    assert set(dialect.LIBRDKAFKA_NAMES) - named == set()
