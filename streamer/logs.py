"""Logging, configured once at the entry point.

Code logs with ``logging.getLogger(__name__)`` and ``key="value"`` context in the message.
Two renderings: one JSON object per line (for collectors; the pairs become fields), or the
text line itself when stderr is a TTY. Secret settings in the message are masked either way
(:func:`streamer.secrets.mask_assignments`, the one policy), as a last line of defence: no
code should log a secret in the first place.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from typing import IO, Any

from streamer.secrets import mask_assignments

_PAIR = re.compile(r'([A-Za-z_][\w.]*)="((?:[^"\\]|\\.)*)"')
_QUIET = ("py4j", "urllib3", "mlflow", "alembic", "git", "filelock", "matplotlib")
_HANDLER_NAME = "streamer"


def _timestamp(record: logging.LogRecord) -> str:
    moment = dt.datetime.fromtimestamp(record.created, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and each key="value" pair."""

    def format(self, record: logging.LogRecord) -> str:
        message = mask_assignments(record.getMessage())
        body: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": message,
        }
        for key, value in _PAIR.findall(message):
            body.setdefault(key, value)
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = mask_assignments(record.getMessage())
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {message}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(
    level: str = "INFO", fmt: str = "auto", stream: IO[str] | None = None
) -> None:
    """Install streamer's handler on the root logger; calling again replaces it."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "text" if getattr(stream, "isatty", lambda: False)() else "json"
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
