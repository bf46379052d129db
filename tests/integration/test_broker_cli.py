"""``streamer broker``: the embedded Apache Kafka's contract, which other tools rely on.

One line ``bootstrap=127.0.0.1:PORT`` on stdout once metadata answers; runs until SIGTERM or
SIGINT, then exit 0; its temporary data removed, or kept and reused with ``--data-dir``; a
broker that cannot start says why in one line and exits non-zero.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from confluent_kafka.admin import AdminClient

from streamer.kafka.admin import create_topics

pytestmark = pytest.mark.integration

LINE = re.compile(r"bootstrap=127\.0\.0\.1:(\d+)\n")


def _start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "streamer.cli", "broker", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _bootstrap(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()  # blocks until the broker answers, or exits
    match = LINE.fullmatch(line)
    assert match, f"first stdout line {line!r}; stderr: {process.stderr.read() if process.poll() is not None else ''}"
    return f"127.0.0.1:{match.group(1)}"


def _stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str]:
    process.send_signal(sig)
    out, _ = process.communicate(timeout=60)
    return process.returncode, out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_prints_one_line_serves_and_cleans_up_its_temp_dir(tmp_path, sig):
    temp = tmp_path / "tmp"
    temp.mkdir()
    process = _start(env={"TMPDIR": str(temp)})
    try:
        bootstrap = _bootstrap(process)
        metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
        assert len(metadata.brokers) == 1
        assert any(temp.iterdir()), "the broker's data should live in the temp dir"
    finally:
        code, rest = _stop(process, sig)
    assert code == 0
    assert rest == "", f"more than one stdout line: {rest!r}"
    assert not list(temp.glob("kafka-*")), "the temporary data dir was not removed"


def test_data_dir_survives_a_restart_on_the_same_port(tmp_path):
    data = tmp_path / "data"
    first = _start("--data-dir", str(data))
    try:
        bootstrap = _bootstrap(first)
        create_topics(bootstrap, {}, {"kept": 3})
    finally:
        assert _stop(first)[0] == 0
    assert (data / "server.properties").exists()
    second = _start("--data-dir", str(data))
    try:
        assert _bootstrap(second) == bootstrap
        topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
        assert len(topics["kept"].partitions) == 3
    finally:
        assert _stop(second)[0] == 0


def test_a_taken_port_fails_fast_with_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        process = _start("--port", str(port))
        out, err = process.communicate(timeout=60)
    assert process.returncode != 0
    assert out == ""
    lines = [line for line in err.splitlines() if line.startswith("streamer:")]
    assert lines == [f"streamer: cannot start Apache Kafka: port {port} is already in use"]
    print(f"failed in {time.monotonic() - started:.1f}s")


def test_tansu_kind_keeps_the_same_contract():
    process = _start("--kind", "tansu")
    try:
        bootstrap = _bootstrap(process)
        assert AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).brokers
    finally:
        assert _stop(process)[0] == 0
