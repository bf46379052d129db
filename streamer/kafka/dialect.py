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
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streamer.errors import ConfigError

DOCS = "docs/kafka-client-settings.md"


class ClientSettingError(ConfigError):
    """A ``kafka.client`` setting is wrong or cannot be translated. ``key`` names it;
    ``problem`` says why and what to write instead, and never holds a setting's value."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"kafka.client.{key} {problem}")


Converter = Callable[[str, Mapping[str, str]], dict[str, Any]]
"""``(value, the whole client) -> librdkafka settings``; raises :class:`ClientSettingError`."""


@dataclass(frozen=True)
class Rule:
    """How one Java client setting reaches librdkafka. Exactly one of ``librdkafka``,
    ``convert``, ``jvm_only`` and ``refused`` is set."""

    librdkafka: str | None = None
    convert: Converter | None = field(default=None, compare=False)
    jvm_only: bool = False
    refused: str | None = None
    """Why librdkafka cannot do what this setting does (shown in the error)."""


def _to(name: str) -> Rule:
    return Rule(librdkafka=name)


def _conv(fn: Converter) -> Rule:
    return Rule(convert=fn)


JVM_ONLY = Rule(jvm_only=True)


def _refused(why: str) -> Rule:
    return Rule(refused=why)


def _fail(key: str, problem: str) -> ClientSettingError:
    return ClientSettingError(key, problem)


def _get(client: Mapping[str, Any], key: str, default: str = "") -> str:
    value = client.get(key)
    return default if value is None else str(value)


# --- JAAS ------------------------------------------------------------------------------


@dataclass(frozen=True)
class JaasEntry:
    """One login module of a ``sasl.jaas.config`` line."""

    module: str
    flag: str
    options: dict[str, str]


_FLAGS = ("required", "requisite", "sufficient", "optional")
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _starts_word(c: str) -> bool:
    """Kafka's JaasConfig tokenizer (a default ``java.io.StreamTokenizer`` plus ``- _ $``
    as word characters, as released in kafka-clients 3.9 and 4.1): a word starts with a
    letter, ``_``, ``$`` or a character from 160 up."""
    return (c.isascii() and (c.isalpha() or c in "_$")) or ord(c) >= 160


def _in_word(c: str) -> bool:
    """A word goes on over digits, ``.`` and ``-`` too; anything else ends it."""
    return _starts_word(c) or c in "0123456789.-"


def _jaas_tokens(text: str) -> list[tuple[str, str]]:
    """``(kind, text)`` tokens, kind ``word``, ``quoted``, ``;`` or ``=``, by the rules of
    Kafka's ``JaasConfig``: ``//`` and ``/* */`` comments (a lone ``/`` comments out the
    rest of its line), single or double quotes with Java's backslash escapes."""
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if ord(c) <= 32:
            i += 1
        elif c == "/":
            if text.startswith("/*", i):
                end = text.find("*/", i + 2)
                i = n if end < 0 else end + 2
            else:  # "//", or a lone "/" (Java's comment character): to the end of the line
                ends = [p for p in (text.find("\n", i), text.find("\r", i)) if p >= 0]
                i = min(ends) if ends else n
        elif c in ";=":
            tokens.append((c, c))
            i += 1
        elif c in "\"'":
            value, i = _jaas_quoted(text, i)
            tokens.append(("quoted", value))
        elif _starts_word(c):
            start = i
            while i < n and _in_word(text[i]):
                i += 1
            tokens.append(("word", text[start:i]))
        else:
            raise _fail(
                "sasl.jaas.config",
                "has an unquoted value that starts with a digit or holds characters other "
                'than letters, digits, . - _ $; quote it: name="value"',
            )
    return tokens


def _jaas_quoted(text: str, start: int) -> tuple[str, int]:
    out: list[str] = []
    quote, i, n = text[start], start + 1, len(text)
    while i < n:
        c = text[i]
        if c == quote:
            return "".join(out), i + 1
        if c in "\r\n":
            break
        if c == "\\" and i + 1 < n:
            nxt = text[i + 1]
            if nxt in "01234567":
                limit = 3 if nxt <= "3" else 2
                digits = re.match(f"[0-7]{{1,{limit}}}", text[i + 1 :])
                assert digits is not None
                out.append(chr(int(digits[0], 8)))
                i += 1 + len(digits[0])
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    raise _fail("sasl.jaas.config", f"has a quoted value whose closing {quote} is missing")


_JAVA_CLASS = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+\.[A-Z][A-Za-z0-9_$]*$")


def parse_jaas(text: str) -> JaasEntry:
    """``<LoginModule> <flag> (<option>=<value>)*;`` → its parts. Raises
    :class:`ClientSettingError` (naming no value) when Java would reject the line, or it
    holds more than the one login module a client takes."""
    tokens = _jaas_tokens(text)
    if not tokens:
        raise _fail("sasl.jaas.config", "is empty; expected '<LoginModule> required <options>;'")
    expected = "expected '<LoginModule> required name=\"value\" ...;'"
    if len(tokens) < 2 or tokens[0][0] not in ("word", "quoted"):
        raise _fail("sasl.jaas.config", f"does not start with a login module; {expected}")
    module, flag = tokens[0][1], tokens[1][1]
    if tokens[1][0] not in ("word", "quoted") or flag.lower() not in _FLAGS:
        raise _fail(
            "sasl.jaas.config",
            f"has no control flag after the login module (one of {', '.join(_FLAGS)}); {expected}",
        )
    options: dict[str, str] = {}
    i = 2
    while i < len(tokens) and tokens[i][0] != ";":
        number = len(options) + 1
        if not (
            tokens[i][0] in ("word", "quoted")
            and i + 2 < len(tokens)
            and tokens[i + 1][0] == "="
            and tokens[i + 2][0] in ("word", "quoted")
        ):
            raise _fail(
                "sasl.jaas.config",
                f"option {number} is not name=value (quote values holding spaces, /, ; or =)",
            )
        options[tokens[i][1]] = tokens[i + 2][1]
        i += 3
    if i >= len(tokens):
        raise _fail("sasl.jaas.config", "does not end with ';'")
    if i + 1 < len(tokens):
        raise _fail("sasl.jaas.config", "holds more than one login module; a client takes one")
    return JaasEntry(module, flag.lower(), options)


def _module_name(module: str) -> str:
    """The module's class name when it looks like one, so no stray secret is echoed."""
    return module if _JAVA_CLASS.match(module) else "a login module streamer does not know"


PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
OAUTHBEARER_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
KERBEROS_MODULE = "com.sun.security.auth.module.Krb5LoginModule"
MSK_IAM_MODULE = "software.amazon.msk.auth.iam.IAMLoginModule"

_MECHANISMS = {  # login module -> the sasl.mechanism values it serves
    PLAIN_MODULE: ("PLAIN",),
    SCRAM_MODULE: ("SCRAM-SHA-256", "SCRAM-SHA-512"),
    OAUTHBEARER_MODULE: ("OAUTHBEARER",),
    KERBEROS_MODULE: ("GSSAPI",),
    MSK_IAM_MODULE: ("AWS_MSK_IAM",),
}
_LIBRDKAFKA_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", "OAUTHBEARER")

LIBRDKAFKA = "librdkafka (the python backend, and streamer's own admin and offset clients)"

MSK_IAM = (
    "uses AWS MSK IAM, which only the Java client can do (with the aws-msk-iam-auth jar on "
    f"Spark's classpath); {LIBRDKAFKA} cannot log in with it"
)


def _jaas(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    entry = parse_jaas(value)
    opts = entry.options
    if entry.module in (PLAIN_MODULE, SCRAM_MODULE):
        if opts.get("tokenauth", "false").lower() == "true":
            raise _fail(
                "sasl.jaas.config",
                "logs in with a delegation token (tokenauth=true), which librdkafka cannot do",
            )
        if "username" not in opts or "password" not in opts:
            raise _fail("sasl.jaas.config", 'needs username="..." and password="..."')
        return {"sasl.username": opts["username"], "sasl.password": opts["password"]}
    if entry.module == OAUTHBEARER_MODULE:
        return _oauthbearer_jaas(opts)
    if entry.module == KERBEROS_MODULE:
        out = {}
        if "keyTab" in opts:
            out["sasl.kerberos.keytab"] = opts["keyTab"]
        if "principal" in opts:
            out["sasl.kerberos.principal"] = opts["principal"]
        return out
    if entry.module == MSK_IAM_MODULE:
        raise _fail("sasl.jaas.config", MSK_IAM)
    raise _fail(
        "sasl.jaas.config",
        f"uses {_module_name(entry.module)}, which librdkafka cannot run; it takes "
        "PlainLoginModule, ScramLoginModule, OAuthBearerLoginModule or Krb5LoginModule "
        "(others need kafka.backend: jvm)",
    )


_UNSECURED = {  # OAuthBearerLoginModule unsecured-JWT option -> librdkafka sasl.oauthbearer.config
    "unsecuredLoginStringClaim_sub": "principal",
    "unsecuredLoginPrincipalClaimName": "principalClaimName",
    "unsecuredLoginScopeClaimName": "scopeClaimName",
    "unsecuredLoginLifetimeSeconds": "lifeSeconds",
}


def _oauthbearer_jaas(opts: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "clientId" in opts:
        out["sasl.oauthbearer.client.id"] = opts["clientId"]
        out["sasl.oauthbearer.method"] = "oidc"
    if "clientSecret" in opts:
        out["sasl.oauthbearer.client.secret"] = opts["clientSecret"]
    if "scope" in opts:
        out["sasl.oauthbearer.scope"] = opts["scope"]
    extensions = {k[len("extension_") :]: v for k, v in opts.items() if k.startswith("extension_")}
    if extensions:
        out["sasl.oauthbearer.extensions"] = ",".join(f"{k}={v}" for k, v in extensions.items())
    unsecured = []
    for option, value in opts.items():
        if option in _UNSECURED:
            unsecured.append(f"{_UNSECURED[option]}={value}")
        elif option == "unsecuredLoginListClaim_scope":
            # Java: the value's first character is the delimiter (",a,b"); librdkafka: "a,b".
            unsecured.append("scope=" + ",".join(filter(None, value[1:].split(value[:1]))))
        elif option.startswith("unsecuredLoginExtension_"):
            unsecured.append(f"extension_{option[len('unsecuredLoginExtension_') :]}={value}")
        elif option.startswith("unsecuredLogin"):
            raise _fail("sasl.jaas.config", "has an unsecured-JWT option librdkafka lacks")
    if unsecured:
        if any(re.search(r"\s", part) for part in unsecured):
            raise _fail("sasl.jaas.config", "has an unsecured-JWT value with spaces")
        out["enable.sasl.oauthbearer.unsecure.jwt"] = "true"
        out["sasl.oauthbearer.config"] = " ".join(unsecured)
    return out


def _mechanism(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    mechanism = value.strip().upper()
    if mechanism == "AWS_MSK_IAM":
        raise _fail("sasl.mechanism", MSK_IAM)
    if mechanism not in _LIBRDKAFKA_MECHANISMS:
        raise _fail(
            "sasl.mechanism",
            f"is not one librdkafka has; it takes {', '.join(_LIBRDKAFKA_MECHANISMS)}",
        )
    return {"sasl.mechanisms": mechanism}


_OAUTH_LOGIN_HANDLERS = (
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerLoginCallbackHandler",
)


def _login_handler(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    if value.strip() in _OAUTH_LOGIN_HANDLERS:
        return {}  # OIDC client credentials: librdkafka's sasl.oauthbearer.method=oidc
    raise _fail(
        "sasl.login.callback.handler.class",
        f"names {_module_name(value.strip())}, a Java class librdkafka cannot run; only "
        "OAuthBearerLoginCallbackHandler (OIDC) has a librdkafka equivalent",
    )


def _client_handler(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    if "software.amazon.msk.auth.iam" in value:
        raise _fail("sasl.client.callback.handler.class", MSK_IAM)
    raise _fail(
        "sasl.client.callback.handler.class",
        "names a Java class, which librdkafka cannot run; use kafka.backend: jvm",
    )


def _token_endpoint(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    if not value.strip().lower().startswith(("https://", "http://")):
        raise _fail(
            "sasl.oauthbearer.token.endpoint.url",
            "is not an http(s) URL; librdkafka cannot read a token from a file",
        )
    return {"sasl.oauthbearer.token.endpoint.url": value, "sasl.oauthbearer.method": "oidc"}


_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_RETRIEVERS = {
    "org.apache.kafka.common.security.oauthbearer.DefaultJwtRetriever": {},
    "org.apache.kafka.common.security.oauthbearer.ClientCredentialsJwtRetriever": {
        "sasl.oauthbearer.grant.type": "client_credentials"
    },
    "org.apache.kafka.common.security.oauthbearer.JwtBearerJwtRetriever": {
        "sasl.oauthbearer.grant.type": _JWT_BEARER
    },
}


def _retriever(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    if value.strip() in _RETRIEVERS:
        return dict(_RETRIEVERS[value.strip()])
    raise _fail(
        "sasl.oauthbearer.jwt.retriever.class",
        "names a retriever librdkafka lacks; it has ClientCredentialsJwtRetriever and "
        "JwtBearerJwtRetriever (DefaultJwtRetriever picks by the token endpoint URL)",
    )


# --- TLS -------------------------------------------------------------------------------

_STORE_TYPES = ("JKS", "PKCS12", "PEM")


def _store_type(client: Mapping[str, Any], store: str) -> str:
    """``ssl.<store>.type``, upper case; the Java client's default is JKS."""
    return _get(client, f"ssl.{store}.type", "JKS").strip().upper()


def _truststore_location(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    kind = _store_type(client, "truststore")
    if kind == "PEM":
        return {"ssl.ca.location": value}
    if kind == "JKS":
        raise _fail(
            "ssl.truststore.location",
            "is a JKS truststore (ssl.truststore.type is JKS or unset, the Java default), "
            "which librdkafka cannot read: export the CA certificates to a PEM file "
            "(keytool -exportcert -rfc) and set ssl.truststore.type: PEM",
        )
    raise _fail(
        "ssl.truststore.location",
        f"is a {kind} truststore; librdkafka reads CA certificates only as PEM: export them "
        "to a PEM file and set ssl.truststore.type: PEM",
    )


def _truststore_certificates(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    return {"ssl.ca.pem": value}


def _keystore_location(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    kind = _store_type(client, "keystore")
    if kind == "PKCS12":
        return {"ssl.keystore.location": value}
    if kind == "PEM":  # one file holding the private key and the certificate chain
        return {"ssl.certificate.location": value, "ssl.key.location": value}
    raise _fail(
        "ssl.keystore.location",
        "is a JKS keystore (ssl.keystore.type is JKS or unset, the Java default), which "
        "librdkafka cannot read: convert it with keytool -importkeystore -deststoretype "
        "PKCS12 and set ssl.keystore.type: PKCS12",
    )


def _keystore_password(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    if "ssl.keystore.location" in client and _store_type(client, "keystore") == "PKCS12":
        return {"ssl.keystore.password": value}
    return {}


def _key_password(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    kind = _store_type(client, "keystore")
    if kind == "PEM":
        return {"ssl.key.password": value}
    in_keystore = kind == "PKCS12" and "ssl.keystore.location" in client
    if in_keystore and value != _get(client, "ssl.keystore.password"):
        raise _fail(
            "ssl.key.password",
            "differs from ssl.keystore.password; librdkafka opens a PKCS12 keystore "
            "and its key with ssl.keystore.password alone",
        )
    return {}


def _endpoint_identification(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    algorithm = value.strip().lower()
    if algorithm in ("", "https"):
        return {"ssl.endpoint.identification.algorithm": algorithm or "none"}
    raise _fail(
        "ssl.endpoint.identification.algorithm",
        "must be https (check the broker's host name) or '' (do not)",
    )


# --- producer, sockets -----------------------------------------------------------------


def _int(key: str, value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise _fail(key, "must be a whole number") from None


def _buffer_memory(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    size = _int("buffer.memory", value)
    return {"queue.buffering.max.kbytes": max(1, math.ceil(size / 1024))}


def _socket_buffer(key: str, name: str) -> Converter:
    def convert(value: str, client: Mapping[str, str]) -> dict[str, Any]:
        size = _int(key, value)
        return {name: 0 if size < 0 else size}  # Java -1, librdkafka 0: the OS default

    return convert


def _compression_level(codec: str) -> Converter:
    def convert(value: str, client: Mapping[str, str]) -> dict[str, Any]:
        if _get(client, "compression.type").strip().lower() == codec:
            return {"compression.level": value}
        return {}  # a level for a codec not in use

    return convert


# --- the table -------------------------------------------------------------------------

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
    {name: _to(name) for name in _SAME},
    dict.fromkeys(_JVM_ONLY, JVM_ONLY),
    {
        # renamed
        "fetch.max.wait.ms": _to("fetch.wait.max.ms"),
        "max.request.size": _to("message.max.bytes"),
        "metadata.max.age.ms": _to("topic.metadata.refresh.interval.ms"),
        "request.timeout.ms": _to("socket.timeout.ms"),
        "sasl.oauthbearer.assertion.template.file": _to(
            "sasl.oauthbearer.assertion.jwt.template.file"
        ),
        "sasl.oauthbearer.client.credentials.client.id": _to("sasl.oauthbearer.client.id"),
        "sasl.oauthbearer.client.credentials.client.secret": _to("sasl.oauthbearer.client.secret"),
        "ssl.keystore.certificate.chain": _to("ssl.certificate.pem"),
        "ssl.keystore.key": _to("ssl.key.pem"),
        # converted
        "buffer.memory": _conv(_buffer_memory),
        "compression.gzip.level": _conv(_compression_level("gzip")),
        "compression.lz4.level": _conv(_compression_level("lz4")),
        "compression.zstd.level": _conv(_compression_level("zstd")),
        "receive.buffer.bytes": _conv(
            _socket_buffer("receive.buffer.bytes", "socket.receive.buffer.bytes")
        ),
        "send.buffer.bytes": _conv(_socket_buffer("send.buffer.bytes", "socket.send.buffer.bytes")),
        "sasl.client.callback.handler.class": _conv(_client_handler),
        "sasl.jaas.config": _conv(_jaas),
        "sasl.login.callback.handler.class": _conv(_login_handler),
        "sasl.mechanism": _conv(_mechanism),
        "sasl.oauthbearer.jwt.retriever.class": _conv(_retriever),
        "sasl.oauthbearer.token.endpoint.url": _conv(_token_endpoint),
        "ssl.endpoint.identification.algorithm": _conv(_endpoint_identification),
        "ssl.key.password": _conv(_key_password),
        "ssl.keystore.location": _conv(_keystore_location),
        "ssl.keystore.password": _conv(_keystore_password),
        "ssl.keystore.type": _conv(lambda value, client: {}),  # read by the keystore rules
        "ssl.truststore.certificates": _conv(_truststore_certificates),
        "ssl.truststore.location": _conv(_truststore_location),
        "ssl.truststore.type": _conv(lambda value, client: {}),  # read by the truststore rules
        # refused for librdkafka
        "bootstrap.controllers": _refused("talks to KRaft controllers; streamer talks to brokers"),
        "partitioner.class": _refused("names a Java partitioner class"),
        "sasl.login.class": _refused("names a Java login class"),
        "security.providers": _refused("names Java security providers"),
        "ssl.cipher.suites": _refused(
            "lists Java (IANA) cipher suite names; OpenSSL, under librdkafka, names them otherwise"
        ),
        "ssl.engine.factory.class": _refused("names a Java SSL engine factory"),
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


# --- public API ------------------------------------------------------------------------


def _check_names(client: Mapping[str, Any]) -> None:
    for key in client:
        if key in TABLE:
            continue
        if key in LIBRDKAFKA_NAMES:
            raise _fail(key, f"is librdkafka's name; {LIBRDKAFKA_NAMES[key]} (see {DOCS})")
        close = difflib.get_close_matches(key, list(TABLE), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise _fail(key, f"is not a Java Kafka client setting{hint} (see {DOCS})")


def validate(client: Mapping[str, Any]) -> None:
    """Check ``kafka.client`` for either backend: Java client names only, none that Spark
    or streamer set, a JAAS line Java would parse, and values both clients take. Raises
    :class:`ClientSettingError` with one line naming the key; never a value."""
    _check_names(client)
    for key in client:
        if key in MANAGED:
            raise _fail(key, MANAGED[key])
    for store in ("truststore", "keystore"):
        key = f"ssl.{store}.type"
        if key in client and _store_type(client, store) not in _STORE_TYPES:
            raise _fail(key, f"must be one of {', '.join(_STORE_TYPES)}")
    for key, store in (
        ("ssl.truststore.certificates", "truststore"),
        ("ssl.keystore.certificate.chain", "keystore"),
        ("ssl.keystore.key", "keystore"),
    ):
        if key in client and _store_type(client, store) != "PEM":
            raise _fail(key, f"holds PEM text; it needs ssl.{store}.type: PEM")
    algorithm = _get(client, "ssl.endpoint.identification.algorithm", "https").strip().lower()
    if algorithm == "none":
        raise _fail(
            "ssl.endpoint.identification.algorithm",
            "is 'none', librdkafka's spelling; the Java client's is '' (an empty string)",
        )
    if algorithm not in ("", "https"):
        raise _fail(
            "ssl.endpoint.identification.algorithm",
            "must be https (check the broker's host name) or '' (do not)",
        )
    if "sasl.jaas.config" in client:
        entry = parse_jaas(_get(client, "sasl.jaas.config"))
        mechanism = _get(client, "sasl.mechanism", "GSSAPI").strip().upper()
        serves = _MECHANISMS.get(entry.module)
        if serves is not None and mechanism not in serves:
            raise _fail(
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
            raise _fail(key, f"{rule.refused}, which {LIBRDKAFKA} cannot take")
    return out


def to_spark_options(client: Mapping[str, Any]) -> dict[str, str]:
    """``kafka.client`` → options for Spark's Kafka source and sink:
    ``{"kafka.<java name>": "<value>"}`` (booleans as ``true``/``false``)."""
    _check_names(client)
    return {
        f"kafka.{k}": (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in client.items()
    }
