"""``streamer run`` as a driver process against a real Spark standalone cluster.

The workers run without the project's virtualenv (see :mod:`.cluster`): executors get the
interpreter from the driver's ``PYSPARK_PYTHON`` path, the model travels as an archive, and
nothing may be lost or duplicated across a SIGTERM and a restart.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from streamer.offsets.stores import FileStore
from tests.helpers import consume_all, consume_topics, produce
from tests.integration.models import event_records
from tests.integration.runner import source_positions, write_config

pytestmark = pytest.mark.integration

FIRST, SECOND = 400, 100
"""Events produced before the first run and between the runs."""

EXECUTOR_CONF = {
    "spark.executor.memory": "512m",
    "spark.executor.cores": "1",
    "spark.cores.max": "2",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.shuffle.partitions": "2",
}


def _driver_env(**overrides: str) -> dict[str, str]:
    """The test's environment without a Python choice: the service must make its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_")}
    env["PYTHONUNBUFFERED"] = "1"
    return {**env, **overrides}


class Driver:
    """``streamer run`` in its own process; its stderr goes to a file (it may be long)."""

    def __init__(self, config: str, log: Path, **env: str) -> None:
        self.log = log
        self._file = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamer.cli", "run", "--config", config],
            env=_driver_env(**env),
            cwd=log.parent,  # not the checkout: its streamer/ must not be importable by path
            stdin=subprocess.DEVNULL,
            stdout=self._file,
            stderr=subprocess.STDOUT,
        )

    def stop(self, timeout: float = 120) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=30)
            self._file.close()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def json_lines(self) -> list[dict]:
        lines = []
        for line in self.text().splitlines():
            if line.startswith("{"):
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    continue
        return lines

    def summary(self) -> dict:
        found = [line for line in self.json_lines() if line["msg"].startswith("run stopped")]
        assert len(found) == 1, self.text()[-4000:]
        return found[0]


def _config(tmp_path: Path, cluster, kafka_bootstrap, topics, model, **spark) -> str:
    return write_config(
        tmp_path / "streamer.yaml",
        bootstrap=kafka_bootstrap,
        topics=topics,
        model=model,
        spark={
            "master": cluster.master_url,
            "app_name": f"streamer-{tmp_path.name}",
            "checkpoint_dir": str(tmp_path),
            "trigger": "0 seconds",
            "max_offsets_per_trigger": 50,
            **spark,
        },
        logging={"format": "json"},
    )


@pytest.mark.slow
def test_run_on_a_standalone_cluster_is_exact_across_a_restart(
    spark_cluster, kafka_bootstrap, fraud_classifier, tmp_path, service_topics
):
    """Two driver processes, each a new application with new executors: 2-4 minutes on a
    shared 2-core machine (a driver's start and first batch on the cluster alone take
    about a minute), hence ``slow``; run it with ``-m slow``."""
    topics = service_topics(partitions=2)
    first = [*event_records(FIRST, seed=41, prefix="a"), (b"bad-a", b"{oops")]
    produce(kafka_bootstrap, topics["in"], first)
    config = _config(
        tmp_path, spark_cluster, kafka_bootstrap, topics, fraud_classifier, conf=EXECUTOR_CONF
    )
    store = FileStore(tmp_path / "offsets")

    # First run: stop it (SIGTERM) once part of the input is scored.
    driver = Driver(config, tmp_path / "driver-1.log")
    try:
        consume_all(kafka_bootstrap, topics["out"], 60, timeout=300)
    finally:
        code = driver.stop()
    assert code == 0, driver.text()[-6000:]
    ready = [line["msg"] for line in driver.json_lines() if "spark session ready" in line["msg"]]
    assert len(ready) == 1 and f'master="{spark_cluster.master_url}"' in ready[0], ready
    stored = store.load()
    assert stored is not None
    position = stored.offsets[topics["in"]]
    summary = driver.summary()
    assert int(summary["input_rows"]) == sum(position.values())
    records = _all(kafka_bootstrap, topics, sum(position.values()))
    # Exactly the offsets below the stored position were scored, each once.
    expected = Counter({(p, o): 1 for p, end in position.items() for o in range(end)})
    assert source_positions(records) == expected

    # More events while it is down; the restart resumes from the store, loses and repeats
    # nothing, and a second model ship (a new SparkContext, new executors) works as well.
    # Larger batches now: only the first run had to be stopped mid-stream.
    produce(kafka_bootstrap, topics["in"], event_records(SECOND, seed=42, prefix="b"))
    total = len(first) + SECOND
    driver = Driver(
        config, tmp_path / "driver-2.log", STREAMER_SPARK__MAX_OFFSETS_PER_TRIGGER="1000"
    )
    try:
        records = _all(kafka_bootstrap, topics, total, timeout=300)
    finally:
        code = driver.stop()
    assert code == 0, driver.text()[-6000:]
    seen = source_positions(records)
    assert len(seen) == total, "an event has no output or dead letter"
    duplicated = {pos: n for pos, n in seen.items() if n > 1}
    assert not duplicated, f"duplicates across the restart: {list(duplicated)[:5]}"
    assert int(driver.summary()["input_rows"]) == total - sum(position.values())
    final = store.load()
    assert final is not None
    assert sum(final.offsets[topics["in"]].values()) == total
    dead = [json.loads(r.value) for r in records if r.topic == topics["dlq"]]
    assert [d["reason"] for d in dead] == ["invalid_json"]

    # Both runs were applications of the cluster, each granted both workers' cores.
    apps = [a for a in spark_cluster.applications() if a["name"] == f"streamer-{tmp_path.name}"]
    assert len(apps) == 2, apps
    assert all(a["cores"] == 2 for a in apps), apps


def test_start_up_failure_on_the_cluster_is_one_line(
    spark_cluster, kafka_bootstrap, new_topic, fraud_classifier, tmp_path
):
    """``spark.pyspark.python`` from the config is applied; here it names the system
    Python the virtualenv was made from, which lacks streamer, so the Python data source
    cannot be created. The Java exception and the Python traceback behind it come down to
    one line."""
    topics = {"in": new_topic(), "out": new_topic(), "dlq": new_topic()}
    system_python = os.path.join(sys.base_prefix, "bin", "python3")
    conf = {**EXECUTOR_CONF, "spark.pyspark.python": system_python}
    config = _config(tmp_path, spark_cluster, kafka_bootstrap, topics, fraud_classifier, conf=conf)
    driver = Driver(config, tmp_path / "driver.log")
    try:
        code = driver.process.wait(timeout=300)
    finally:
        driver.stop()
    output = driver.text()
    assert code == 1, output[-6000:]
    last = output.strip().splitlines()[-1]
    # the first of the venv's packages the system Python lacks: streamer, or pyarrow before it
    assert re.fullmatch(
        r"streamer: start-up failed: AnalysisException: \[PYTHON_DATA_SOURCE_ERROR\] Failed to "
        r"create Python data source instance: ModuleNotFoundError: No module named "
        r"'(streamer|pyarrow)'",
        last,
    ), output[-6000:]
    assert "Traceback" not in last and "\tat " not in last
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith("streamer-")]
    assert leftovers == [], "the failed start must remove its work directory"


def _all(bootstrap: str, topics: dict[str, str], expected: int, timeout: float = 120):
    """Outputs and dead letters, read from the start until ``expected`` arrived, then a
    little longer so that a surplus (duplicates) is seen too."""
    return consume_topics(bootstrap, [topics["out"], topics["dlq"]], expected, timeout, settle=2.0)
