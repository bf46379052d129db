"""One root exception for streamer; each stage raises a subclass of it.

Third-party errors are wrapped with ``raise ... from exc`` so the cause stays visible, and
:func:`root_cause` says in one line what a Spark (Py4J / PySpark) error comes down to.
"""

from __future__ import annotations

import re
from typing import Any


class StreamerError(Exception):
    """Root of every error streamer raises on purpose."""


class ConfigError(StreamerError):
    """A configuration key has a bad value. The message names the key, the value and the fix."""


class ModelError(StreamerError):
    """The model cannot be resolved, loaded, or validated against its signature."""


class KafkaIOError(StreamerError):
    """A Kafka backend cannot be selected, reached, or used."""


class OffsetsError(StreamerError):
    """Start offsets cannot be loaded, parsed or applied."""


class MissingTopicError(KafkaIOError):
    """A topic the service needs does not exist (not a transient broker problem)."""


class SparkError(StreamerError):
    """Spark refused or failed an operation; the message ends with :func:`root_cause`."""


class DeployError(StreamerError):
    """A handoff or a deployment cannot proceed (lease held, takeover timed out, EMR error)."""


class LeaseLostError(DeployError):
    """Another instance took the lease over; this one must stop without writing."""


_TRACEBACK = "Traceback (most recent call last):"
_CONDITION = re.compile(r"^\[[A-Z][A-Z0-9_.]*\]")
"""A Spark error condition opening a message, e.g. ``[PYTHON_DATA_SOURCE_ERROR]``."""
_PYTHON_EXCEPTION = "[PYTHON_EXCEPTION]"
_SQLSTATE = re.compile(r"\s*SQLSTATE: \w+\s*$")
_JAVA_LINE = re.compile(r"^(?:Caused by: |: )?([a-zA-Z_$][\w$]*(?:\.[a-zA-Z_$][\w$]*)+): ?(.*)$")
"""``org.apache.spark.SparkException: message`` as a Java stack trace prints a throwable."""


def is_spark_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from Spark: a Py4J error (the JVM threw, or is unreachable)
    or a PySpark exception (including the ones converted from JVM exceptions)."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    return isinstance(exc, Py4JError | PySparkException)


def root_cause(exc: BaseException) -> str:
    """What ``exc`` comes down to, in one line: ``<class>: <message>``.

    The Python cause chain (``raise ... from``) is followed to its end, then the Java one
    (``Throwable.getCause()``) of a ``Py4JJavaError`` or a PySpark ``CapturedException``.
    A message carrying a Python traceback (a ``PythonException``: a UDF, a data source or a
    Python worker failed) becomes the exception line at the end of that traceback, e.g.
    ``ModuleNotFoundError: No module named 'streamer'``, after the Spark error condition
    that carried it, if any (``[PYTHON_DATA_SOURCE_ERROR] ...: ModuleNotFoundError: ...``).
    Never the first line of a stack trace; never raises (the JVM may be gone by now).
    """
    inner = exc
    seen = {id(inner)}
    while inner.__cause__ is not None and id(inner.__cause__) not in seen:
        inner = inner.__cause__
        seen.add(id(inner))
    java = getattr(inner, "java_exception", None) or getattr(inner, "_origin", None)
    if java is not None:
        try:
            name, message = _java_root(java)
            return _one_line(name, message)
        except Exception:  # the gateway is closed: fall back to the text below
            pass
    try:
        text = getattr(inner, "_desc", None) or str(inner)
    except Exception:  # Py4JJavaError's str asks the JVM for the stack trace
        return type(inner).__name__
    if type(inner).__name__ == "Py4JJavaError":
        name, message = _root_in_stack_trace(text)
        return _one_line(name, message)
    return _one_line(type(inner).__name__, text)


def _java_root(throwable: Any) -> tuple[str, str]:
    """The innermost cause's simple class name and message (at most 64 causes deep), or
    its wrapper's when that only adds context to the same message (``Cannot run program
    "x": error=2, ...`` over ``error=2, ...``)."""
    found = _describe(throwable)
    for _ in range(64):
        cause = throwable.getCause()
        if cause is None:
            break
        throwable, outer = cause, found
        found = _describe(cause)
        if found[1] and outer[1].endswith(found[1]) and outer[1] != found[1]:
            found = outer
    return found


def _describe(throwable: Any) -> tuple[str, str]:
    return str(throwable.getClass().getSimpleName()), str(throwable.getMessage() or "")


def _root_in_stack_trace(text: str) -> tuple[str, str]:
    """From a Java stack trace as text (``Py4JJavaError``'s str): the last ``Caused by``,
    else the throwable the trace starts with."""
    found: tuple[str, str] | None = None
    for line in text.splitlines():
        match = _JAVA_LINE.match(line)
        if match and (found is None or line.startswith("Caused by: ")):
            found = match[1].rsplit(".", 1)[-1], match[2]
    if found is None:
        return "Py4JJavaError", text
    # The message runs on to the first frame; a Python traceback may be in it.
    name, first = found
    start = text.find(first) if first else -1
    if start >= 0:
        end = text.find("\n\tat ", start)
        return name, text[start : end if end >= 0 else len(text)]
    return name, first


def _one_line(name: str, message: str) -> str:
    from_traceback = _python_exception(message)
    if from_traceback is not None:
        exception, condition = from_traceback
        return f"{name}: {condition}: {exception}" if condition else exception
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    first = _SQLSTATE.sub("", lines[0]) if lines else ""
    return f"{name}: {first}" if first else name


def _python_exception(message: str) -> tuple[str, str] | None:
    """The exception line of the Python traceback in ``message`` (the first unindented
    line after the last ``Traceback`` header's frames) and the Spark error condition line
    that carried it (empty when there is none); None without a traceback."""
    at = message.rfind(_TRACEBACK)
    if at < 0:
        return None
    exception = ""
    for line in message[at + len(_TRACEBACK) :].splitlines():
        if line.strip() and not line[0].isspace():
            exception = _SQLSTATE.sub("", line.strip())
            break
    if not exception:
        return None
    head = message[:at].strip().splitlines()
    condition = head[0].strip().rstrip(":") if head else ""
    if not _CONDITION.match(condition) or condition.startswith(_PYTHON_EXCEPTION):
        condition = ""  # a Python worker's error: the exception line says it all
    return exception, condition
