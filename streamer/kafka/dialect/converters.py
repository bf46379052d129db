"""The converters of the translation table: a Java client setting's value (and the
settings beside it) → librdkafka settings, or a :class:`ClientSettingError` saying why
librdkafka cannot do what it asks."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from streamer.kafka.dialect.jaas import (
    KERBEROS_MODULE,
    MSK_IAM_MODULE,
    OAUTHBEARER_MODULE,
    PLAIN_MODULE,
    SCRAM_MODULE,
    module_name,
    parse_jaas,
)
from streamer.kafka.dialect.rules import Converter, fail, setting

_LIBRDKAFKA_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", "OAUTHBEARER")

LIBRDKAFKA = "librdkafka (the python backend, and streamer's own admin and offset clients)"

MSK_IAM = (
    "uses AWS MSK IAM, which only the Java client can do (with the aws-msk-iam-auth jar on "
    f"Spark's classpath); {LIBRDKAFKA} cannot log in with it"
)


def jaas_config(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    entry = parse_jaas(value)
    opts = entry.options
    if entry.module in (PLAIN_MODULE, SCRAM_MODULE):
        if opts.get("tokenauth", "false").lower() == "true":
            raise fail(
                "sasl.jaas.config",
                "logs in with a delegation token (tokenauth=true), which librdkafka cannot do",
            )
        if "username" not in opts or "password" not in opts:
            raise fail("sasl.jaas.config", 'needs username="..." and password="..."')
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
        raise fail("sasl.jaas.config", MSK_IAM)
    raise fail(
        "sasl.jaas.config",
        f"uses {module_name(entry.module)}, which librdkafka cannot run; it takes "
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
            raise fail("sasl.jaas.config", "has an unsecured-JWT option librdkafka lacks")
    if unsecured:
        if any(re.search(r"\s", part) for part in unsecured):
            raise fail("sasl.jaas.config", "has an unsecured-JWT value with spaces")
        out["enable.sasl.oauthbearer.unsecure.jwt"] = "true"
        out["sasl.oauthbearer.config"] = " ".join(unsecured)
    return out


def mechanism(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    mechanism = value.strip().upper()
    if mechanism == "AWS_MSK_IAM":
        raise fail("sasl.mechanism", MSK_IAM)
    if mechanism not in _LIBRDKAFKA_MECHANISMS:
        raise fail(
            "sasl.mechanism",
            f"is not one librdkafka has; it takes {', '.join(_LIBRDKAFKA_MECHANISMS)}",
        )
    return {"sasl.mechanisms": mechanism}


_OAUTH_LOGIN_HANDLERS = (
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerLoginCallbackHandler",
)


def login_handler(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    if value.strip() in _OAUTH_LOGIN_HANDLERS:
        return {}  # OIDC client credentials: librdkafka's sasl.oauthbearer.method=oidc
    raise fail(
        "sasl.login.callback.handler.class",
        f"names {module_name(value.strip())}, a Java class librdkafka cannot run; only "
        "OAuthBearerLoginCallbackHandler (OIDC) has a librdkafka equivalent",
    )


def client_handler(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    if "software.amazon.msk.auth.iam" in value:
        raise fail("sasl.client.callback.handler.class", MSK_IAM)
    raise fail(
        "sasl.client.callback.handler.class",
        "names a Java class, which librdkafka cannot run; use kafka.backend: jvm",
    )


def token_endpoint(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    if not value.strip().lower().startswith(("https://", "http://")):
        raise fail(
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


def retriever(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    if value.strip() in _RETRIEVERS:
        return dict(_RETRIEVERS[value.strip()])
    raise fail(
        "sasl.oauthbearer.jwt.retriever.class",
        "names a retriever librdkafka lacks; it has ClientCredentialsJwtRetriever and "
        "JwtBearerJwtRetriever (DefaultJwtRetriever picks by the token endpoint URL)",
    )


# --- TLS -------------------------------------------------------------------------------

STORE_TYPES = ("JKS", "PKCS12", "PEM")


def store_type(client: Mapping[str, Any], store: str) -> str:
    """``ssl.<store>.type``, upper case; the Java client's default is JKS."""
    return setting(client, f"ssl.{store}.type", "JKS").strip().upper()


def truststore_location(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    kind = store_type(client, "truststore")
    if kind == "PEM":
        return {"ssl.ca.location": value}
    if kind == "JKS":
        raise fail(
            "ssl.truststore.location",
            "is a JKS truststore (ssl.truststore.type is JKS or unset, the Java default), "
            "which librdkafka cannot read: export the CA certificates to a PEM file "
            "(keytool -exportcert -rfc) and set ssl.truststore.type: PEM",
        )
    raise fail(
        "ssl.truststore.location",
        f"is a {kind} truststore; librdkafka reads CA certificates only as PEM: export them "
        "to a PEM file and set ssl.truststore.type: PEM",
    )


def truststore_certificates(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    return {"ssl.ca.pem": value}


def keystore_location(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    kind = store_type(client, "keystore")
    if kind == "PKCS12":
        return {"ssl.keystore.location": value}
    if kind == "PEM":  # one file holding the private key and the certificate chain
        return {"ssl.certificate.location": value, "ssl.key.location": value}
    raise fail(
        "ssl.keystore.location",
        "is a JKS keystore (ssl.keystore.type is JKS or unset, the Java default), which "
        "librdkafka cannot read: convert it with keytool -importkeystore -deststoretype "
        "PKCS12 and set ssl.keystore.type: PKCS12",
    )


def keystore_password(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    if "ssl.keystore.location" in client and store_type(client, "keystore") == "PKCS12":
        return {"ssl.keystore.password": value}
    return {}


def key_password(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    kind = store_type(client, "keystore")
    if kind == "PEM":
        return {"ssl.key.password": value}
    in_keystore = kind == "PKCS12" and "ssl.keystore.location" in client
    if in_keystore and value != setting(client, "ssl.keystore.password"):
        raise fail(
            "ssl.key.password",
            "differs from ssl.keystore.password; librdkafka opens a PKCS12 keystore "
            "and its key with ssl.keystore.password alone",
        )
    return {}


def endpoint_identification(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    algorithm = value.strip().lower()
    if algorithm in ("", "https"):
        return {"ssl.endpoint.identification.algorithm": algorithm or "none"}
    raise fail(
        "ssl.endpoint.identification.algorithm",
        "must be https (check the broker's host name) or '' (do not)",
    )


# --- producer, sockets -----------------------------------------------------------------


def _int(key: str, value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise fail(key, "must be a whole number") from None


def buffer_memory(value: str, client: Mapping[str, str]) -> dict[str, Any]:
    size = _int("buffer.memory", value)
    return {"queue.buffering.max.kbytes": max(1, math.ceil(size / 1024))}


def socket_buffer(key: str, name: str) -> Converter:
    def convert(value: str, client: Mapping[str, str]) -> dict[str, Any]:
        size = _int(key, value)
        return {name: 0 if size < 0 else size}  # Java -1, librdkafka 0: the OS default

    return convert


def compression_level(codec: str) -> Converter:
    def convert(value: str, client: Mapping[str, str]) -> dict[str, Any]:
        if setting(client, "compression.type").strip().lower() == codec:
            return {"compression.level": value}
        return {}  # a level for a codec not in use

    return convert
