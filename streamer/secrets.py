"""One policy for what is secret, and one way to hide it.

A setting is secret by its *name* (:func:`is_secret`): a password, secret, passphrase or
token, key material (a private key, ``ssl.keystore.key``, ``ssl.key.pem``), a JAAS or
OAUTHBEARER login config, anything holding credentials, an access or API key. A file's
*location* is not secret (``ssl.key.location``, ``...private.key.file``), nor is a
certificate (``ssl.keystore.certificate.chain``), nor an OAuth token endpoint URL.

Everything that shows settings goes through here: config errors and ``Config.redacted()``
(:mod:`streamer.config`), the Kafka client log lines (:func:`streamer.kafka.admin.loggable`),
every log line as a last line of defence (:mod:`streamer.logs`), and Spark's own UI and
event log through :data:`SPARK_REDACTION_REGEX` (for ``spark.redaction.regex``), which
matches every name :func:`is_secret` matches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"

SPARK_DEFAULT_REDACTION_REGEX = r"(?i)secret|password|token|access[.]?key"
"""Spark's default ``spark.redaction.regex``."""

# Each marker is a regex that is valid in Python and in Java (Spark compiles the joined
# pattern). A name matching one is secret, unless a rule in _NOT_SECRET excuses it.
_MARKERS = (
    r"secret",
    r"passw(or)?d",
    r"passphrase",
    r"token",
    r"credential",
    r"jaas",
    r"sasl[._]oauthbearer[._]config",
    r"user[._-]?info",  # basic.auth.user.info holds "user:password"
    r"private[._-]?key",
    r"access[._-]?key",
    r"api[._-]?key",
    r"key[._-]pem",
    r"(^|[._-])key$",  # ssl.keystore.key, ssl_key, fs.s3a.secret.key
)
_SECRET = re.compile("|".join(_MARKERS), re.I)
_STRONG = re.compile(r"secret|passw(or)?d|passphrase|credential|jaas|user[._-]?info", re.I)
# Names that hold where a secret is, or what kind it is, and not the secret itself.
_NOT_SECRET = re.compile(r"token[._-]endpoint|[._-](file|location|path|type|algorithm)$", re.I)

SPARK_REDACTION_REGEX = "(?i)" + "|".join(
    dict.fromkeys([*SPARK_DEFAULT_REDACTION_REGEX.removeprefix("(?i)").split("|"), *_MARKERS])
)
"""For ``spark.redaction.regex``: Spark's default plus every marker :func:`is_secret` uses.
Spark redacts a property when the regex matches its name or its value."""


SPARK_STRING_REDACTION_REGEX = (
    r"(?i)password=\"[^\"]*\""
    r"|(passw(or)?d|secret|passphrase)[\"']?\s*[=:]\s*[\"']?[^\"'\s,;}\]]+"
)
"""For ``spark.redaction.string.regex`` (plans and explain output): a JAAS
``password="..."`` and any ``password=``/``"secret": "..."`` pair in text."""


def is_secret(key: str) -> bool:
    """Whether a setting named ``key`` holds a secret (case-insensitive, any prefix).

    >>> [is_secret(k) for k in ("sasl.jaas.config", "ssl.key.location", "sasl.username")]
    [True, False, False]
    """
    if not _SECRET.search(key):
        return False
    return bool(_STRONG.search(key)) or not _NOT_SECRET.search(key)


def mask_mapping(m: Mapping[Any, Any]) -> dict[Any, Any]:
    """A copy safe to show: values of secret keys become ``***`` at any depth, and
    credentials in URL values are hidden (:func:`mask_url`)."""
    return {k: (MASK if is_secret(str(k)) else _mask_value(v)) for k, v in m.items()}


def mask_value(key: str, value: Any) -> Any:
    """A value as shown beside the name of its setting (in a config error, say): masked
    whole when ``key`` is secret; else the values of secret keys in mappings, at any depth,
    and in text, secret ``name=value`` pairs and URL credentials (a malformed setting may
    be a line of them)."""
    if is_secret(key):
        return MASK
    if isinstance(value, Mapping):
        return mask_mapping(value)
    if isinstance(value, (list, tuple)):
        return [mask_value("", v) for v in value]
    if isinstance(value, str):
        return mask_assignments(value)
    return value


def _mask_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return mask_mapping(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_mask_value(v) for v in value)
    if isinstance(value, str):
        return mask_url(value)
    return value


_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/\s?#]*)@")
_URL_QUERY = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&#\s]+)=(?P<value>[^&#\s]*)")


def mask_url(url: str) -> str:
    """``https://user:pass@host/x?token=t`` → ``https://user:***@host/x?token=***``.

    Works on any text: every URL in it is masked. Userinfo without a password (often a
    bare token, as in ``https://ghp_abc@github.com``) is masked whole; query parameters
    with secret names are masked too.
    """
    if "://" not in url:
        return url

    def userinfo(match: re.Match[str]) -> str:
        user, colon, _ = match["info"].partition(":")
        shown = f"{user}:{MASK}" if colon else MASK
        return f"{match['scheme']}{shown}@"

    def query(match: re.Match[str]) -> str:
        if not is_secret(match["name"]):
            return match[0]
        return f"{match['lead']}{match['name']}={MASK}"

    return _URL_QUERY.sub(query, _URL_USERINFO.sub(userinfo, url))


def mask_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each known secret value replaced by ``***``
    (longest first, so a secret containing another is masked whole)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


_ASSIGNMENT = re.compile(
    r"""(?P<q>["']?)(?P<name>[A-Za-z_][\w.-]*)(?P=q)(?P<sep>\s*[=:]\s*)"""
    r"""(?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s,;}\]]+)"""
)


def mask_assignments(text: str) -> str:
    """Free text with the value of each ``name=value``, ``name: value`` or
    ``"name": "value"`` whose name is secret replaced by ``***`` (quotes kept), and URL
    credentials hidden: for text whose structure is unknown, such as a malformed setting
    echoed in an error."""

    def assignment(match: re.Match[str]) -> str:
        if not is_secret(match["name"]):
            return match[0]
        value = match["value"]
        quote = value[0] if value[:1] in ("'", '"') else ""
        return f"{match['q']}{match['name']}{match['q']}{match['sep']}{quote}{MASK}{quote}"

    return mask_url(_ASSIGNMENT.sub(assignment, text))
