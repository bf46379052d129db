"""The run's totals, added up from the query's progress events by a listener."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql.streaming import StreamingQueryListener

from streamer.kafka.jvm_backend import is_fenced
from streamer.metrics.observed import OBSERVATION
from streamer.metrics.registry import ServiceMetrics
from streamer.offsets import Offsets, format_offsets, merge_offsets, parse_offsets
from streamer.scoring.records import REASONS

log = logging.getLogger(__name__)


@dataclass
class Totals:
    """What a run has done so far, as seen by completed micro-batches."""

    batches: int = 0
    input_rows: int = 0
    outputs: int = 0
    shadow_outputs: int = 0
    shadow_failures: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    model_loads: int = 0
    load_pids: list[int] = field(default_factory=list)
    offsets: Offsets = field(default_factory=dict)
    last_batch_id: int = -1
    first_output_at_ms: int | None = None
    last_output_at_ms: int | None = None

    @property
    def dead_letters_total(self) -> int:
        return sum(self.dead_letters.values())

    def summary(self) -> str:
        workers = len(set(self.load_pids))
        return (
            f'batches="{self.batches}" input_rows="{self.input_rows}" outputs="{self.outputs}" '
            f'dead_letters="{self.dead_letters_total}" model_loads="{self.model_loads}" '
            f'loading_workers="{workers}" offsets="{format_offsets(self.offsets)}"'
            + (
                f' shadow_outputs="{self.shadow_outputs}" shadow_failures="{self.shadow_failures}"'
                if self.shadow_outputs or self.shadow_failures
                else ""
            )
        )


class RunStats(StreamingQueryListener):
    """Totals one query's progress events, updates its metrics, logs one line per batch.

    Spark calls ``onQueryProgress`` on its listener-bus thread, asynchronously, after the
    micro-batch's sink commit, in batch order. The last event can arrive after
    ``awaitTermination`` returns; :meth:`wait_for_batch` waits for it. The durable position
    is :class:`streamer.offsets.OffsetsListener`'s job; the offsets here are for reporting.
    """

    def __init__(self, query_name: str, metrics: ServiceMetrics | None = None) -> None:
        super().__init__()
        self.query_name = query_name
        self.metrics = metrics
        self._lock = threading.Condition()
        self._totals = Totals()
        self.terminated_error: str | None = None
        self.query_id: str | None = None  # from onQueryStarted; idle/terminated carry no name
        self.last_event_at: float | None = None
        self.last_input_per_s = 0.0
        self.last_batch_seconds: float | None = None
        self.lag: dict[tuple[str, int], int] = {}

    def onQueryStarted(self, event: Any) -> None:
        if event.name == self.query_name:
            self.query_id = str(event.id)

    def onQueryIdle(self, event: Any) -> None:
        if str(event.id) == self.query_id:
            self.last_event_at = time.monotonic()

    def onQueryTerminated(self, event: Any) -> None:
        if str(event.id) == self.query_id and event.exception and not is_fenced(event.exception):
            with self._lock:
                self.terminated_error = event.exception

    def onQueryProgress(self, event: Any) -> None:
        try:
            self._on_progress(event.progress)
        except Exception:
            log.exception('progress handling failed query="%s"', self.query_name)

    def _on_progress(self, progress: Any) -> None:
        if progress.name != self.query_name:
            return
        ended: Offsets = {}
        for source in progress.sources:
            ended = merge_offsets(ended, parse_offsets(source.endOffset))
        observed_row = progress.observedMetrics.get(OBSERVATION)
        observed = observed_row.asDict() if observed_row is not None else None
        dead = 0
        with self._lock:
            t = self._totals
            t.batches += 1
            t.last_batch_id = progress.batchId
            t.input_rows += int(progress.numInputRows)
            t.offsets = merge_offsets(t.offsets, ended)
            if observed is not None:
                t.outputs += int(observed["outputs"])
                t.shadow_outputs += int(observed["shadow_outputs"])
                t.shadow_failures += int(observed["shadow_failures"])
                t.model_loads += int(observed["model_loads"])
                t.load_pids.extend(int(p) for p in observed["load_pids"])
                for r in REASONS:
                    count = int(observed[f"dead_{r}"])
                    dead += count
                    if count:
                        t.dead_letters[r] = t.dead_letters.get(r, 0) + count
                if int(observed["outputs"]) + dead:
                    now_ms = int(time.time() * 1000)
                    t.last_output_at_ms = now_ms
                    if t.first_output_at_ms is None:
                        t.first_output_at_ms = now_ms
            self.last_event_at = time.monotonic()
            self._lock.notify_all()
        if self.metrics is not None:
            self.metrics.record_batch(progress, observed)
        durations = dict(progress.durationMs or {})
        self.last_input_per_s = float(progress.inputRowsPerSecond or 0.0)
        if "triggerExecution" in durations:
            self.last_batch_seconds = durations["triggerExecution"] / 1000.0
        e2e = (
            f"{observed['e2e_sum_ms'] / observed['e2e_count']:.0f}"
            if observed and observed["e2e_count"]
            else "-"
        )
        log.info(
            'batch completed id="%d" rows="%d" outputs="%s" dead_letters="%d" '
            'duration_ms="%s" add_batch_ms="%s" e2e_mean_ms="%s" lag="%s"',
            progress.batchId,
            progress.numInputRows,
            observed["outputs"] if observed else "-",
            dead,
            durations.get("triggerExecution", "-"),
            durations.get("addBatch", "-"),
            e2e,
            sum(self.lag.values()) if self.lag else "-",
        )

    def totals(self) -> Totals:
        """A consistent copy of the totals."""
        with self._lock:
            t = self._totals
            return Totals(
                batches=t.batches,
                input_rows=t.input_rows,
                outputs=t.outputs,
                shadow_outputs=t.shadow_outputs,
                shadow_failures=t.shadow_failures,
                dead_letters=dict(t.dead_letters),
                model_loads=t.model_loads,
                load_pids=list(t.load_pids),
                offsets={k: dict(v) for k, v in t.offsets.items()},
                last_batch_id=t.last_batch_id,
                first_output_at_ms=t.first_output_at_ms,
                last_output_at_ms=t.last_output_at_ms,
            )

    def wait_for_batch(self, batch_id: int, timeout: float) -> bool:
        """Wait until the progress of ``batch_id`` has been counted."""
        with self._lock:
            return self._lock.wait_for(lambda: self._totals.last_batch_id >= batch_id, timeout)

    def retarget(self, query_name: str) -> None:
        """Follow the query that replaces the stopped one (a model swap): its batch ids
        start again at 0; the totals carry on. Late events of the old query are ignored."""
        with self._lock:
            self.query_name = query_name
            self.query_id = None
            self._totals.last_batch_id = -1
