"""An embedded Apache Kafka: one KRaft node (broker and controller in one JVM) on loopback.

The jars come from Maven Central through :mod:`streamer.jvm` (resolved once into the user
cache). A data directory holds the node's ``server.properties``, its ``log4j2.properties``,
its log (``broker.log``) and its storage (``data/``); given the same directory again, the
node restarts on the same ports with its topics and offsets, which is how the tests stop a
broker for an outage and bring it back.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import IO

from confluent_kafka.admin import AdminClient

from streamer.children import die_with
from streamer.errors import KafkaIOError
from streamer.jvm import broker_jars
from streamer.kafka import secured
from streamer.kafka.processes import free_port, stop_process, wait_until_up

log = logging.getLogger(__name__)

PROPERTIES = "server.properties"
_QUIET = logging.getLogger(f"{__name__}.probe")
_QUIET.disabled = True

_LOG4J = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = out
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
"""


def server_properties(port: int, controller_port: int, data: Path) -> dict[str, str]:
    """A single combined KRaft node; every internal topic at replication 1, so consumer
    groups and transactions work on one node."""
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data),
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "4",
    }


def _read_properties(path: Path) -> dict[str, str]:
    props: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            props[key.strip()] = value.strip()
    return props


def _port_of(listeners: str, name: str) -> int:
    match = re.search(rf"{name}://[^,:]+:(\d+)", listeners)
    if match is None:
        raise KafkaIOError(f"no {name} listener in {listeners!r}")
    return int(match.group(1))


class ApacheKafkaBroker:
    """A KRaft node on loopback; a context manager that stops it (and removes a temporary
    data directory) on exit."""

    kind = "kafka"

    def __init__(
        self,
        *,
        jars_root: Path,
        port: int | None = None,
        data_dir: str | Path | None = None,
        java: str = "java",
        heap: str = "768m",
        sasl_ssl: bool = False,
    ) -> None:
        """``sasl_ssl`` adds a SASL_SSL listener (:mod:`streamer.kafka.secured`) on a port
        of its own; :attr:`sasl_ssl` then says how to reach it. A data directory formatted
        with one keeps it."""
        self._jars_root = jars_root
        self._java = java
        self._heap = heap
        self._owns_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="kafka-"))
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        existing = self.data_dir / PROPERTIES
        if existing.exists():
            props = _read_properties(existing)
            stored = _port_of(props["listeners"], "PLAINTEXT")
            if port is not None and port != stored:
                raise KafkaIOError(
                    f"{self.data_dir} holds a broker on port {stored}, not {port}; omit --port "
                    "or use another --data-dir"
                )
            self.port = stored
            self.sasl_ssl = secured.restore(self.data_dir)
        else:
            self.port = port or free_port()
            self.sasl_ssl = None
        self._add_sasl_ssl = sasl_ssl  # at format time: a formatted directory keeps its own
        self.bootstrap_servers = f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "broker.log"

    def _classpath(self) -> str:
        return ":".join(str(j) for j in broker_jars(self._jars_root))

    def _java_command(self, main: str, *args: str) -> list[str]:
        if shutil.which(self._java) is None and not Path(self._java).exists():
            raise KafkaIOError("cannot start Apache Kafka: no java on PATH (Java 17 is needed)")
        return [
            self._java,
            f"-Xmx{self._heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp",
            self._classpath(),
            main,
            *args,
        ]

    def _format(self) -> None:
        """Write the node's config and format its storage, once per data directory."""
        props_path = self.data_dir / PROPERTIES
        if props_path.exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = server_properties(self.port, free_port(), self.data_dir / "data")
        users: list[str] = []
        if self._add_sasl_ssl:
            secure_port = free_port()
            self.sasl_ssl, extra, users = secured.prepare(self.data_dir, secure_port)
            name = secured.LISTENER
            props.update(extra)
            props["listeners"] += f",{name}://127.0.0.1:{secure_port}"
            props["advertised.listeners"] += f",{name}://127.0.0.1:{secure_port}"
            props["listener.security.protocol.map"] += f",{name}:{name}"
        (self.data_dir / "log4j2.properties").write_text(_LOG4J)
        staged = self.data_dir / f".{PROPERTIES}"
        staged.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        cluster = "-"
        while cluster.startswith("-"):  # as Kafka's own ids: a leading dash reads as a flag
            cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        done = subprocess.run(
            self._java_command(
                "kafka.tools.StorageTool",
                *("format", "--standalone", "-t", cluster, "-c", str(staged), *users),
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise KafkaIOError(
                f"cannot format Kafka storage in {self.data_dir}: "
                f"{detail[-1] if detail else done.returncode}"
            )
        staged.rename(props_path)

    def start(self, timeout: float = 90.0) -> ApacheKafkaBroker:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                raise KafkaIOError(f"cannot start Apache Kafka: port {self.port} is already in use")
        self._format()
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        self._process = subprocess.Popen(
            self._java_command("kafka.Kafka", str(self.data_dir / PROPERTIES)),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # SIGTERM, not SIGKILL: a broker killed with its parent still closes its logs
            preexec_fn=die_with(os.getpid(), signal.SIGTERM),
        )
        # refused connections while the JVM starts are expected: keep librdkafka quiet
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers}, logger=_QUIET)
        try:
            name = f"Apache Kafka on {self.bootstrap_servers}"
            wait_until_up(name, self._process, admin, timeout, self._cause)
        except KafkaIOError:
            self.stop()
            raise
        log.info(
            'embedded broker started kind="kafka" bootstrap="%s" pid="%d" data_dir="%s"',
            self.bootstrap_servers,
            self._process.pid,
            self.data_dir,
        )
        return self

    def _cause(self) -> str:
        """The most telling line of the broker's log: its last error, else its last line."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "no log"
        errors = [line for line in lines if " ERROR " in line or "Exception" in line]
        chosen = (errors or lines or ["no output"])[-1]
        if "Address already in use" in "\n".join(lines):
            chosen = f"port {self.port} is already in use"
        return chosen.strip()[:300]

    def stop(self, timeout: float = 30.0) -> None:
        process, self._process = self._process, None
        stop_process(process, self._log, timeout)
        self._log = None

    def close(self) -> None:
        """Stop, and remove the data directory when it was a temporary one."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> ApacheKafkaBroker:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()
