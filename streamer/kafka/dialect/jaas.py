"""``sasl.jaas.config`` read the way Kafka's Java client reads it (``JaasConfig``), and the
login modules streamer knows."""

from __future__ import annotations

import re
from dataclasses import dataclass

from streamer.kafka.dialect.rules import fail


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
            raise fail(
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
    raise fail("sasl.jaas.config", f"has a quoted value whose closing {quote} is missing")


_JAVA_CLASS = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+\.[A-Z][A-Za-z0-9_$]*$")


def parse_jaas(text: str) -> JaasEntry:
    """``<LoginModule> <flag> (<option>=<value>)*;`` → its parts. Raises
    :class:`ClientSettingError` (naming no value) when Java would reject the line, or it
    holds more than the one login module a client takes."""
    tokens = _jaas_tokens(text)
    if not tokens:
        raise fail("sasl.jaas.config", "is empty; expected '<LoginModule> required <options>;'")
    expected = "expected '<LoginModule> required name=\"value\" ...;'"
    if len(tokens) < 2 or tokens[0][0] not in ("word", "quoted"):
        raise fail("sasl.jaas.config", f"does not start with a login module; {expected}")
    module, flag = tokens[0][1], tokens[1][1]
    if tokens[1][0] not in ("word", "quoted") or flag.lower() not in _FLAGS:
        raise fail(
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
            raise fail(
                "sasl.jaas.config",
                f"option {number} is not name=value (quote values holding spaces, /, ; or =)",
            )
        options[tokens[i][1]] = tokens[i + 2][1]
        i += 3
    if i >= len(tokens):
        raise fail("sasl.jaas.config", "does not end with ';'")
    if i + 1 < len(tokens):
        raise fail("sasl.jaas.config", "holds more than one login module; a client takes one")
    return JaasEntry(module, flag.lower(), options)


def module_name(module: str) -> str:
    """The module's class name when it looks like one, so no stray secret is echoed."""
    return module if _JAVA_CLASS.match(module) else "a login module streamer does not know"


PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
OAUTHBEARER_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
KERBEROS_MODULE = "com.sun.security.auth.module.Krb5LoginModule"
MSK_IAM_MODULE = "software.amazon.msk.auth.iam.IAMLoginModule"

MECHANISMS = {  # login module -> the sasl.mechanism values it serves
    PLAIN_MODULE: ("PLAIN",),
    SCRAM_MODULE: ("SCRAM-SHA-256", "SCRAM-SHA-512"),
    OAUTHBEARER_MODULE: ("OAUTHBEARER",),
    KERBEROS_MODULE: ("GSSAPI",),
    MSK_IAM_MODULE: ("AWS_MSK_IAM",),
}
