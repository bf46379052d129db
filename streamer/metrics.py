"""Run metrics: observed per-batch counts from the scored stream, totalled by a listener.

The scoring UDF tags each row with its dead-letter ``reason`` (null for outputs) and the
model loads of its Python worker. ``Dataset.observe`` aggregates those per micro-batch on
the executors; the totals reach the driver in the query progress, where :class:`RunStats`
adds them up. Counting this way is exact across worker processes, without shared state.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQueryListener

from streamer.offsets import Offsets, format_offsets, merge_offsets, parse_offsets
from streamer.scoring.parse import REASONS

log = logging.getLogger(__name__)

OBSERVATION = "streamer"

OFFSET_STORE_FAILURES = Counter(
    "streamer_offset_store_failures_total",
    "Offset persists that failed (retried with the next progress event)",
    ["store"],
)
OFFSETS_SKIPPED = Counter(
    "streamer_offsets_skipped_events_total",
    "Events skipped at start-up because the broker had deleted them (on_out_of_range: skip)",
    ["topic"],
)


def _observed_columns() -> list[Column]:
    cols = [
        F.count(F.lit(1)).alias("rows"),
        F.count_if(F.col("reason").isNull()).alias("outputs"),
        F.coalesce(F.sum("model_loads"), F.lit(0)).alias("model_loads"),
        F.collect_list(F.when(F.col("model_loads") > 0, F.col("worker_pid"))).alias("load_pids"),
    ]
    cols += [F.count_if(F.col("reason") == r).alias(f"dead_{r}") for r in REASONS]
    return cols


def observe(scored: DataFrame) -> DataFrame:
    """Attach the per-batch observation to the scored stream (before the sink)."""
    return scored.observe(OBSERVATION, *_observed_columns())


@dataclass
class Totals:
    """What a run has done so far, as seen by completed micro-batches."""

    batches: int = 0
    input_rows: int = 0
    outputs: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    model_loads: int = 0
    load_pids: list[int] = field(default_factory=list)
    offsets: Offsets = field(default_factory=dict)
    last_batch_id: int = -1

    @property
    def dead_letters_total(self) -> int:
        return sum(self.dead_letters.values())

    def summary(self) -> str:
        workers = len(set(self.load_pids))
        return (
            f'batches="{self.batches}" input_rows="{self.input_rows}" outputs="{self.outputs}" '
            f'dead_letters="{self.dead_letters_total}" model_loads="{self.model_loads}" '
            f'loading_workers="{workers}" offsets="{format_offsets(self.offsets)}"'
        )


class RunStats(StreamingQueryListener):
    """Totals one query's progress events.

    Spark calls ``onQueryProgress`` on its listener-bus thread, asynchronously, after the
    micro-batch's sink commit, in batch order. The last event can arrive after
    ``awaitTermination`` returns; :meth:`wait_for_batch` waits for it. The durable position
    is :class:`streamer.offsets.OffsetsListener`'s job; the offsets here are for reporting.
    """

    def __init__(self, query_name: str) -> None:
        super().__init__()
        self.query_name = query_name
        self._lock = threading.Condition()
        self._totals = Totals()
        self.terminated_error: str | None = None

    def onQueryStarted(self, event: Any) -> None:
        pass

    def onQueryIdle(self, event: Any) -> None:
        pass

    def onQueryTerminated(self, event: Any) -> None:
        if event.exception:
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
        observed = progress.observedMetrics.get(OBSERVATION)
        with self._lock:
            t = self._totals
            t.batches += 1
            t.last_batch_id = progress.batchId
            t.input_rows += int(progress.numInputRows)
            t.offsets = merge_offsets(t.offsets, ended)
            if observed is not None:
                row = observed.asDict()
                t.outputs += int(row["outputs"])
                t.model_loads += int(row["model_loads"])
                t.load_pids.extend(int(p) for p in row["load_pids"])
                for r in REASONS:
                    count = int(row[f"dead_{r}"])
                    if count:
                        t.dead_letters[r] = t.dead_letters.get(r, 0) + count
            self._lock.notify_all()

    def totals(self) -> Totals:
        """A consistent copy of the totals."""
        with self._lock:
            t = self._totals
            return Totals(
                batches=t.batches,
                input_rows=t.input_rows,
                outputs=t.outputs,
                dead_letters=dict(t.dead_letters),
                model_loads=t.model_loads,
                load_pids=list(t.load_pids),
                offsets={k: dict(v) for k, v in t.offsets.items()},
                last_batch_id=t.last_batch_id,
            )

    def wait_for_batch(self, batch_id: int, timeout: float) -> bool:
        """Wait until the progress of ``batch_id`` has been counted."""
        with self._lock:
            return self._lock.wait_for(lambda: self._totals.last_batch_id >= batch_id, timeout)
