"""A real Spark standalone cluster for tests: one master and two one-core workers, started
from the ``spark-class`` that pyspark ships, the way an operator would start them.

The workers (and so their executors) run without the project's virtualenv: its ``bin`` is
not on ``PATH`` and ``VIRTUAL_ENV``, ``PYSPARK_PYTHON`` and ``PYSPARK_DRIVER_PYTHON`` are
unset, so ``python3`` on a worker is an interpreter without streamer. Executors get their
Python from the driver instead (its ``PYSPARK_PYTHON``, an absolute path that exists on
every node, as in an EMR on EKS custom image). ``SPARK_HOME`` is set, as it is on any Spark
node.

Every process is started in its own session and its whole process group is ended on
teardown: executors and their Python workers are children of a worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from streamer.kafka.processes import free_port
from tests.helpers import assert_eventually

WORKERS = 2
WORKER_CORES = 1
WORKER_MEMORY = "1g"
DAEMON_MEMORY = "256m"
"""Heap of the master and worker daemons themselves (Spark's default is 1g each)."""


def spark_home() -> str:
    import pyspark

    return os.path.dirname(pyspark.__file__)


def operator_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default this process's environment) as a Spark node without the project's
    virtualenv sees it: its ``bin`` off ``PATH`` and no Python selection variables."""
    env = dict(os.environ if base is None else base)
    venv_bin = os.path.dirname(sys.executable)
    for name in ("VIRTUAL_ENV", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "PYTHONPATH"):
        env.pop(name, None)
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and os.path.abspath(p) != venv_bin
    )
    env["SPARK_HOME"] = spark_home()
    env["SPARK_DAEMON_MEMORY"] = DAEMON_MEMORY
    return env


@dataclass
class StandaloneCluster:
    """A running master and its workers; ``master_url`` is what ``spark.master`` takes."""

    master_url: str
    web_url: str
    root: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)

    def state(self) -> dict:
        """The master's status document (its web UI's ``/json``)."""
        with urllib.request.urlopen(f"{self.web_url}/json", timeout=5) as response:
            return json.load(response)

    def alive_workers(self) -> int:
        return sum(1 for w in self.state().get("workers", []) if w.get("state") == "ALIVE")

    def applications(self) -> list[dict]:
        """Every application the master has seen, running or completed."""
        state = self.state()
        return [*state.get("activeapps", []), *state.get("completedapps", [])]

    def log_tail(self, chars: int = 4000) -> str:
        """The end of every daemon's log, for assertion messages."""
        parts = []
        for path in sorted(self.root.glob("*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Workers first (they end their executors), then the master; the process group of
        each is ended, so no executor or Python worker outlives the cluster."""
        for process in reversed(self.processes):
            _end_group(process)
        for log in self.logs:
            log.close()


def _end_group(process: subprocess.Popen, timeout: float = 20.0) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)
    # Children (executors, Python daemons) left in the group after the daemon exited.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def start_cluster(root: Path, workers: int = WORKERS, timeout: float = 120.0) -> StandaloneCluster:
    """Start a master on a free loopback port and ``workers`` workers; return once every
    worker has registered (the master's ``/json`` lists it ALIVE)."""
    spark_class = os.path.join(spark_home(), "bin", "spark-class")
    env = operator_env()
    port, web_port = free_port(), free_port()
    cluster = StandaloneCluster(
        master_url=f"spark://127.0.0.1:{port}", web_url=f"http://127.0.0.1:{web_port}", root=root
    )

    def launch(name: str, *args: str) -> subprocess.Popen:
        log = open(root / f"{name}.log", "wb")  # noqa: SIM115 (closed in stop())
        cluster.logs.append(log)
        process = subprocess.Popen(
            [spark_class, *args],
            env=env,
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        cluster.processes.append(process)
        return process

    try:
        master = launch(
            "master",
            "org.apache.spark.deploy.master.Master",
            *("--host", "127.0.0.1", "--port", str(port), "--webui-port", str(web_port)),
        )

        def master_answers() -> None:
            assert master.poll() is None, f"master exited:\n{cluster.log_tail()}"
            try:
                cluster.state()
            except (OSError, ValueError) as exc:  # not listening yet, or a partial answer
                raise AssertionError(f"master not answering: {exc}") from exc

        assert_eventually(master_answers, timeout=timeout, interval=0.5)
        for i in range(workers):
            work_dir = root / f"worker-{i}"
            work_dir.mkdir()
            launch(
                f"worker-{i}",
                "org.apache.spark.deploy.worker.Worker",
                cluster.master_url,
                *("--cores", str(WORKER_CORES), "--memory", WORKER_MEMORY),
                *("--host", "127.0.0.1", "--webui-port", "0", "--work-dir", str(work_dir)),
            )

        def registered() -> None:
            exited = [p.args for p in cluster.processes if p.poll() is not None]
            assert not exited, f"{exited} exited:\n{cluster.log_tail()}"
            try:
                alive = cluster.alive_workers()
            except (OSError, ValueError) as exc:
                raise AssertionError(f"master not answering: {exc}") from exc
            assert alive == workers, f"{alive} of {workers} workers registered"

        assert_eventually(registered, timeout=timeout, interval=0.5)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory) -> Iterator[StandaloneCluster]:
    """A Spark standalone cluster (:func:`start_cluster`) for the whole session."""
    started = time.monotonic()
    cluster = start_cluster(tmp_path_factory.mktemp("spark-cluster"))
    print(f"spark standalone cluster up in {time.monotonic() - started:.1f}s", file=sys.stderr)
    try:
        yield cluster
    finally:
        cluster.stop()
