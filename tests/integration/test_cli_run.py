"""``streamer run`` as a real process: scores, stops cleanly on SIGTERM, summarises."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.helpers import consume_all, produce
from tests.integration.models import feature_frame
from tests.integration.runner import source_positions

pytestmark = pytest.mark.integration


def _streamer(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "streamer.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_bad_config_exits_2_with_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("kafka:\n  backend: jvmm\n")
    process = _streamer("run", "--config", str(path), env=dict(os.environ))
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2
    assert err.strip().splitlines()[-1] == (
        f"streamer: config error: kafka.backend = 'jvmm' (from {path}): "
        "expected one of auto, jvm, python"
    )


@pytest.mark.parametrize(
    ("stop_signal", "kafka_backend"),
    [(signal.SIGTERM, "jvm"), (signal.SIGINT, "python")],
    ids=["SIGTERM-jvm", "SIGINT-python"],
)
def test_run_scores_then_stops_cleanly_on_a_signal(
    kafka_bootstrap, new_topic, fraud_classifier, tmp_path, stop_signal, kafka_backend
):
    """SIGINT matters separately: SparkContext installs its own SIGINT handler, which
    cancels every job; the service must take it back and stop at a batch boundary. Each
    signal runs on one backend (the stop path is the same); test_offsets.py's graceful stop
    covers both backends."""
    topics = {
        "input_topic": new_topic(partitions=2),
        "output_topic": new_topic(),
        "dead_letter_topic": new_topic(),
    }
    rows = feature_frame(300, seed=11).to_dict(orient="records")
    events = [
        (
            f"e-{i}".encode(),
            json.dumps({k: getattr(v, "item", lambda v=v: v)() for k, v in r.items()}).encode(),
        )
        for i, r in enumerate(rows)
    ]
    produce(kafka_bootstrap, topics["input_topic"], [*events, (b"bad", b"{not json")])
    config = tmp_path / "streamer.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": kafka_bootstrap, "backend": kafka_backend, **topics},
                "model": {"uri": fraud_classifier.uri},
                "spark": {"master": "local[2]", "checkpoint_dir": str(tmp_path)},
                "offsets": {"path": str(tmp_path / "offsets")},
                "metrics": {"port": 0},
                "logging": {"format": "json"},
            }
        )
    )
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": fraud_classifier.tracking_uri,
        "STREAMER_SPARK__TRIGGER": "500 milliseconds",
    }
    process = _streamer("run", "--config", str(config), env=env)
    try:
        consume_all(kafka_bootstrap, topics["output_topic"], len(events), timeout=240)
        consume_all(kafka_bootstrap, topics["dead_letter_topic"], 1, timeout=60)
    finally:
        process.send_signal(stop_signal)
        _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    # Everything the run wrote, read after it exited: each event exactly once, by the
    # source position it came from, and nothing else.
    outputs = consume_all(kafka_bootstrap, topics["output_topic"], len(events), timeout=60)
    dead = consume_all(kafka_bootstrap, topics["dead_letter_topic"], 1, timeout=60)
    inputs = consume_all(kafka_bootstrap, topics["input_topic"], len(events) + 1, timeout=60)
    written = source_positions([*outputs, *dead])
    twice = sorted(position for position, n in written.items() if n > 1)
    assert not twice, f"{len(twice)} source positions written more than once: {twice[:10]}"
    assert written == Counter((r.partition, r.offset) for r in inputs)
    assert Counter(r.key for r in outputs) == Counter(key for key, _ in events)
    assert [json.loads(r.value)["key"] for r in dead] == ["bad"]
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    summary = [line for line in lines if line["msg"].startswith("run stopped")]
    assert len(summary) == 1, err[-3000:]
    assert summary[0]["outputs"] == str(len(events))
    assert summary[0]["dead_letters"] == "1"
    assert any(line["msg"].startswith("stop requested") for line in lines)
    leftovers = [p for p in Path(tmp_path).iterdir() if p.name.startswith("streamer-")]
    assert leftovers == [], "the throwaway checkpoint and model copy must be removed on exit"
