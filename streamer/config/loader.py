"""The layers of the config, read and merged: defaults ← YAML file ← environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from streamer.config.sections import SECTIONS, Config, FrozenMap, field_types
from streamer.config.validation import check_config, convert, fail, suggest, validate_key
from streamer.errors import ConfigError

ENV_PREFIX = "STREAMER_"

Layer = dict[str, tuple[Any, str]]
"""Raw values by dotted key, each with where it came from."""


def _read_file(path: str | os.PathLike[str]) -> Layer:
    origin = str(path)
    try:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"config error: cannot read {origin}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        # Not str(exc): PyYAML quotes the offending line, which may hold a secret.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"config error: {origin} is not valid YAML{where}: {problem}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"config error: {origin} must hold a mapping of sections")
    layer: Layer = {}
    for section, values in loaded.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"config error: unknown section {section} in {origin}"
                f"{suggest(str(section), SECTIONS)}"
            )
        if values is None:
            continue
        if not isinstance(values, dict):
            raise fail(section, values, origin, "expected a mapping of keys")
        known = field_types(SECTIONS[section])
        for key, value in values.items():
            dotted = f"{section}.{key}"
            if key not in known:
                raise ConfigError(
                    f"config error: unknown key {dotted} in {origin}"
                    f"{suggest(dotted, (f'{section}.{k}' for k in known))}"
                )
            layer[dotted] = (value, origin)
    return layer


def _read_env(env: Mapping[str, str]) -> tuple[Layer, dict[str, dict[str, str]]]:
    """``STREAMER_<SECTION>__<KEY>`` values, and single ``kafka.client`` entries."""
    layer: Layer = {}
    entries: dict[str, dict[str, str]] = {}
    for name, value in sorted(env.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].split("__")
        section = parts[0].lower()
        known = field_types(SECTIONS[section]) if section in SECTIONS else {}
        key = parts[1].lower() if len(parts) > 1 else ""
        if len(parts) == 2 and key in known:
            layer[f"{section}.{key}"] = (value, f"environment variable {name}")
        elif len(parts) == 3 and (section, key) == ("kafka", "client"):
            entries.setdefault("kafka.client", {})[parts[2].lower().replace("_", ".")] = value
        else:
            every = [
                f"{ENV_PREFIX}{s.upper()}__{k.upper()}"
                for s, c in SECTIONS.items()
                for k in field_types(c)
            ]
            raise ConfigError(
                f"config error: environment variable {name} matches no config key"
                f"{suggest(name, every)}"
            )
    return layer, entries


def load_config(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Config:
    """Defaults ← YAML file ← ``STREAMER_<SECTION>__<KEY>`` variables, validated.

    Mappings merge across layers (an env mapping adds to the file's); other values replace.
    """
    file_layer = _read_file(path) if path is not None else {}
    env_layer, entries = _read_env(env)
    sections: dict[str, Any] = {}
    client_origins: dict[str, str] = {}  # kafka.client entry -> where it was set
    for section, cls in SECTIONS.items():
        values = {}
        for key, hint in field_types(cls).items():
            dotted = f"{section}.{key}"
            value, origin = getattr(cls(), key), "defaults"
            for layer, from_env in ((file_layer, False), (env_layer, True)):
                if dotted in layer:
                    raw, origin = layer[dotted]
                    converted = convert(dotted, raw, hint, origin, from_env)
                    is_map = isinstance(converted, Mapping) and isinstance(value, Mapping)
                    value = {**value, **converted} if is_map else converted
                    if dotted == "kafka.client":
                        client_origins.update(dict.fromkeys(converted, origin))
            if dotted in entries:
                value = {**value, **entries[dotted]}
                for name in entries[dotted]:
                    variable = f"{ENV_PREFIX}KAFKA__CLIENT__{name.upper().replace('.', '_')}"
                    client_origins[name] = f"environment variable {variable}"
            if isinstance(value, Mapping):
                value = FrozenMap(value)
            validate_key(dotted, value, origin)
            values[key] = value
        if section == "logging":
            values["level"] = values["level"].upper()
        sections[section] = cls(**values)
    config = Config(**sections)
    return check_config(config, client_origins)
