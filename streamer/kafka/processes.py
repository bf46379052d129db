"""What both embedded brokers (tansu and Apache Kafka) need as child processes: a free
port, a wait until the broker serves, and a stop that cannot hang."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable
from typing import IO

from confluent_kafka.admin import AdminClient

from streamer.errors import KafkaIOError


def stop_process(
    process: subprocess.Popen[bytes] | None, log_file: IO[bytes] | None, timeout: float
) -> None:
    """SIGTERM a broker process, SIGKILL it after ``timeout``, and close its log."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if log_file is not None:
        with contextlib.suppress(OSError):
            log_file.close()


def wait_until_up(
    name: str,
    process: subprocess.Popen[bytes],
    admin: AdminClient,
    timeout: float,
    cause: Callable[[], str] = lambda: "",
) -> None:
    """Poll a just-started broker until its metadata lists a broker. Raises
    :class:`KafkaIOError` when the process exits first or ``timeout`` seconds pass, ending
    with ``cause()`` (what the broker's log says) when there is one."""
    deadline = time.monotonic() + timeout

    def failed(what: str) -> KafkaIOError:
        detail = cause()
        return KafkaIOError(f"{name} {what}{': ' + detail if detail else ''}")

    while True:
        if process.poll() is not None:
            raise failed(f"exited at start (code {process.returncode})")
        error: Exception | None = None
        try:
            if admin.list_topics(timeout=1.0).brokers:
                return
        except Exception as exc:
            error = exc
        if time.monotonic() > deadline:
            raise failed(f"did not answer within {timeout:.0f}s") from error
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
