"""Consumer lag, measured against the broker on a thread of its own."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamer.metrics.registry import ServiceMetrics
from streamer.metrics.stats import RunStats
from streamer.offsets import Offsets
from streamer.offsets.core import lag as offsets_lag

log = logging.getLogger(__name__)


@dataclass
class LagMonitor:
    """Measures consumer lag (broker latest minus persisted offset) on its own thread.

    ``position`` returns the durable position (the offsets listener's); partitions without
    one count from their earliest offset. The probe comes from ``probe_factory`` on the
    thread (again after a failure) and is closed when the thread ends.
    """

    probe_factory: Callable[[], Any]
    topic: str
    position: Callable[[], Offsets]
    metrics: ServiceMetrics
    stats: RunStats
    interval: float
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _thread: threading.Thread = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, name="streamer-lag", daemon=True)

    def start(self) -> LagMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        probe = None
        while True:
            try:
                if probe is None:
                    probe = self.probe_factory()
                self.measure(probe)
            except Exception as exc:
                log.warning('lag measurement failed topic="%s" error="%s"', self.topic, exc)
            if self._stop.wait(self.interval):
                break
        if probe is not None:
            probe.close()

    def measure(self, probe: Any) -> dict[tuple[str, int], int]:
        tps = probe.partitions([self.topic])
        lag = offsets_lag(self.position(), probe.earliest(tps), probe.latest(tps))
        for (t, p), value in lag.items():
            self.metrics.lag.labels(topic=t, partition=str(p)).set(value)
        self.stats.lag = lag
        return lag
