"""Running the service in tests: a config for fresh topics, and reading results back."""

from __future__ import annotations

import json
import subprocess
import threading
from collections import Counter
from collections.abc import Iterable

import pytest
import yaml

from streamer.config import Config, load_config
from streamer.service import RunResult, Service
from tests.helpers import Record, assert_eventually, consume_all


def write_config(path, *, bootstrap: str, topics: dict[str, str], model, **sections) -> str:
    """A YAML config for ``topics`` (keys in, out, dlq) on ``bootstrap``, scored by ``model``:
    a registered model, or the whole ``model`` section as a dict."""
    document = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "input_topic": topics["in"],
            "output_topic": topics["out"],
            "dead_letter_topic": topics["dlq"],
            "backend": "python",
        },
        "model": (
            dict(model)
            if isinstance(model, dict)
            else {"uri": model.uri, "tracking_uri": model.tracking_uri}
        ),
        "offsets": {"path": str(path.parent / "offsets")},
        "metrics": {"port": 0},
    }
    for section, values in sections.items():
        document.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(document))
    return str(path)


def config_for(tmp_path, **kwargs) -> Config:
    return load_config(write_config(tmp_path / "streamer.yaml", **kwargs), env={})


class Running:
    """A started :class:`Service` running on a thread; ``stop()`` returns its result."""

    def __init__(self, config: Config, spark, **kwargs) -> None:
        self.service = Service(config, spark=spark, **kwargs)
        self.service.start()
        self._stop = threading.Event()
        self._results: list[RunResult] = []
        self._thread = threading.Thread(
            target=lambda: self._results.append(self.service.run_until(self._stop)), daemon=True
        )
        self._thread.start()

    def stop(self) -> RunResult:
        self._stop.set()
        self._thread.join(timeout=180)
        assert self._results, "the service did not stop within 180s"
        return self._results[0]


def source_positions(records: Iterable[Record]) -> Counter[tuple[int, int]]:
    """How often each source (partition, offset) has an output or dead letter."""
    return Counter(
        (body["source"]["partition"], body["source"]["offset"])
        for body in (json.loads(r.value) for r in records)
    )


def outputs_of(
    process: subprocess.Popen[str], bootstrap: str, topic: str, expected: int, timeout: float = 600
) -> list[Record]:
    """``expected`` records of ``topic`` (all there are), read while ``process`` (a
    ``streamer run`` with piped stderr) runs; if it exits first, fail with its stderr."""

    def read() -> list[Record]:
        if process.poll() is not None:
            assert process.stderr is not None
            pytest.fail(f"streamer run exited {process.returncode}: {process.stderr.read()[-3000:]}")
        return consume_all(bootstrap, topic, expected, timeout=10)

    return assert_eventually(read, timeout=timeout)
