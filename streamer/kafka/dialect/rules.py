"""The shape of the translation table: a :class:`Rule` per Java client setting, and the
error a setting that cannot be translated raises."""

from __future__ import annotations

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


def rename(name: str) -> Rule:
    return Rule(librdkafka=name)


def converted(fn: Converter) -> Rule:
    return Rule(convert=fn)


JVM_ONLY = Rule(jvm_only=True)


def refused(why: str) -> Rule:
    return Rule(refused=why)


def fail(key: str, problem: str) -> ClientSettingError:
    return ClientSettingError(key, problem)


def setting(client: Mapping[str, Any], key: str, default: str = "") -> str:
    value = client.get(key)
    return default if value is None else str(value)
