"""Run metrics: observed per-batch counts from the scored stream, totalled by a listener
and exported to Prometheus.

The scoring UDF tags each row with its dead-letter ``reason`` (null for outputs), its
end-to-end latency, and the model loads of its Python worker. ``Dataset.observe``
aggregates those per micro-batch on the executors; the totals reach the driver in the query
progress, where :class:`RunStats` adds them up and updates :class:`ServiceMetrics`.
Counting this way is exact across worker processes, without shared state.

Every metric is prefixed ``streamer_``; labels are few and bounded (dead-letter reason,
progress phase, topic and partition of the input topic, offset store kind, model identity).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily, Metric
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQueryListener

from streamer.kafka.jvm_backend import is_fenced
from streamer.offsets import Offsets, format_offsets, merge_offsets, parse_offsets
from streamer.offsets.core import lag as offsets_lag
from streamer.scoring.records import REASONS

log = logging.getLogger(__name__)

OBSERVATION = "streamer"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
BATCH_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)
PHASES = ("addBatch", "walCommit", "commitOffsets", "latestOffset", "queryPlanning", "getBatch")


def _bucket_name(le: float) -> str:
    return f"e2e_le_{int(le * 1000)}ms"


def _observed_columns() -> list[Column]:
    latency = F.col("latency_ms")
    cols = [
        F.count(F.lit(1)).alias("rows"),
        F.count_if(F.col("reason").isNull()).alias("outputs"),
        F.coalesce(F.sum("model_loads"), F.lit(0)).alias("model_loads"),
        F.collect_list(F.when(F.col("model_loads") > 0, F.col("worker_pid"))).alias("load_pids"),
        F.count(latency).alias("e2e_count"),
        F.coalesce(F.sum(latency), F.lit(0.0)).alias("e2e_sum_ms"),
        F.count_if(F.col("shadow_status") == 1).alias("shadow_outputs"),
        F.count_if(F.col("shadow_status") == -1).alias("shadow_failures"),
    ]
    cols += [F.count_if(latency <= le * 1000).alias(_bucket_name(le)) for le in LATENCY_BUCKETS]
    cols += [F.count_if(F.col("reason") == r).alias(f"dead_{r}") for r in REASONS]
    return cols


def observe(scored: DataFrame) -> DataFrame:
    """Attach the per-batch observation to the scored stream (before the sink)."""
    return scored.observe(OBSERVATION, *_observed_columns())


class _AccumulatedHistogram:
    """A histogram fed with per-batch bucket counts (computed on executors), not samples."""

    def __init__(self, name: str, documentation: str, buckets: Iterable[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.buckets = tuple(buckets)
        self._lock = threading.Lock()
        self._counts = [0] * len(self.buckets)
        self._count = 0
        self._sum = 0.0

    def add(self, cumulative: Iterable[int], count: int, total: float) -> None:
        with self._lock:
            self._counts = [a + int(b) for a, b in zip(self._counts, cumulative, strict=True)]
            self._count += int(count)
            self._sum += float(total)

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation)]

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            buckets = [(repr(le), c) for le, c in zip(self.buckets, self._counts)]
            buckets.append(("+Inf", self._count))
            total = self._sum
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric([], buckets, total)
        yield family


class ServiceMetrics:
    """One service's metrics, in their own registry (so runs in one process stay apart)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.batches = Counter("streamer_batches", "Completed micro-batches", registry=r)
        self.input_rows = Counter(
            "streamer_input_rows", "Records read from the input topic", registry=r
        )
        self.output_rows = Counter(
            "streamer_output_rows", "Predictions written to the output topic", registry=r
        )
        self.dead_letters = Counter(
            "streamer_dead_letters", "Records sent to the dead-letter topic", ["reason"], registry=r
        )
        for reason in REASONS:
            self.dead_letters.labels(reason=reason)
        self.batch_duration = Histogram(
            "streamer_batch_duration_seconds",
            "Micro-batch duration (triggerExecution)",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.phase = Gauge(
            "streamer_batch_phase_seconds",
            "Duration of each phase of the last micro-batch",
            ["phase"],
            registry=r,
        )
        self.input_rate = Gauge(
            "streamer_input_rows_per_second", "Input rate of the last micro-batch", registry=r
        )
        self.processing_rate = Gauge(
            "streamer_processed_rows_per_second",
            "Processing rate of the last micro-batch",
            registry=r,
        )
        self.lag = Gauge(
            "streamer_consumer_lag",
            "Broker's latest offset minus the persisted offset, per input partition",
            ["topic", "partition"],
            registry=r,
        )
        self.e2e_latency = _AccumulatedHistogram(
            "streamer_end_to_end_latency_seconds",
            "Scoring time minus the Kafka record timestamp, per scored record",
            LATENCY_BUCKETS,
        )
        r.register(self.e2e_latency)
        self.last_batch = Gauge(
            "streamer_last_batch_timestamp_seconds",
            "When the last micro-batch completed (Unix time)",
            registry=r,
        )
        self.model_info = Gauge(
            "streamer_model_info", "The model being served", ["name", "version", "uri"], registry=r
        )
        self.offset_store_failures = Counter(
            "streamer_offset_store_failures",
            "Offset persists that failed (retried with the next progress event)",
            ["store"],
            registry=r,
        )
        self.offsets_skipped = Counter(
            "streamer_offsets_skipped_events",
            "Events skipped at start-up because the broker no longer held them",
            ["topic"],
            registry=r,
        )
        self.model_loads = Counter(
            "streamer_model_loads", "Model loads by Python worker processes", registry=r
        )
        self.shadow_enabled = Gauge(
            "streamer_shadow_enabled",
            "1 while a shadow model scores beside the model; 0 when configured but off",
            registry=r,
        )
        self.shadow_outputs = Counter(
            "streamer_shadow_outputs",
            "Shadow model records produced to the shadow topic",
            registry=r,
        )
        self.shadow_failures = Counter(
            "streamer_shadow_failures",
            "Parsed records without a shadow record: not scored, or dropped (never the output's)",
            registry=r,
        )
        self.model_swaps = Counter(
            "streamer_model_swaps",
            "New model versions seen by model.follow_alias: swapped in, or refused by validation",
            ["outcome"],
            registry=r,
        )
        for outcome in ("swapped", "refused"):
            self.model_swaps.labels(outcome=outcome)
        self.query_active = Gauge(
            "streamer_query_active", "1 while the streaming query runs", registry=r
        )
        self.lease_epoch = Gauge(
            "streamer_lease_epoch", "Epoch of the handoff lease this instance holds", registry=r
        )
        self.handoffs = Counter(
            "streamer_handoffs",
            "Leases acquired, by how: new, released (handed over) or stale (after timeout)",
            ["how"],
            registry=r,
        )
        self.handoff_gap = Gauge(
            "streamer_handoff_gap_seconds",
            "Last handoff: from the previous owner's last output batch to this one's first",
            registry=r,
        )
        self.handoff_lost = Gauge(
            "streamer_handoff_lost_events",
            "Last handoff: events between the previous owner's end and this one's start",
            registry=r,
        )
        self.handoff_duplicates = Gauge(
            "streamer_handoff_duplicate_events",
            "Last handoff: events the previous owner had read that this one reads again "
            "(exact when released, an upper bound after a stale takeover)",
            registry=r,
        )

    def exported_names(self) -> set[str]:
        """Every sample name this registry can export (``_total``, ``_bucket``, ...)."""
        names: set[str] = set()
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
            "gauge": ("",),
        }
        for family in self.registry.collect():
            names.update(family.name + s for s in suffixes.get(family.type, ("",)))
        return names

    def record_batch(self, progress: Any, observed: Mapping[str, Any] | None) -> None:
        self.batches.inc()
        self.input_rows.inc(int(progress.numInputRows))
        durations = dict(progress.durationMs or {})
        if "triggerExecution" in durations:
            self.batch_duration.observe(durations["triggerExecution"] / 1000.0)
        for phase in PHASES:
            if phase in durations:
                self.phase.labels(phase=phase).set(durations[phase] / 1000.0)
        self.input_rate.set(float(progress.inputRowsPerSecond or 0.0))
        self.processing_rate.set(float(progress.processedRowsPerSecond or 0.0))
        self.last_batch.set(time.time())
        if observed is None:
            return
        self.output_rows.inc(int(observed["outputs"]))
        self.model_loads.inc(int(observed["model_loads"]))
        self.shadow_outputs.inc(int(observed["shadow_outputs"]))
        self.shadow_failures.inc(int(observed["shadow_failures"]))
        for reason in REASONS:
            count = int(observed[f"dead_{reason}"])
            if count:
                self.dead_letters.labels(reason=reason).inc(count)
        self.e2e_latency.add(
            [observed[_bucket_name(le)] for le in LATENCY_BUCKETS],
            int(observed["e2e_count"]),
            float(observed["e2e_sum_ms"]) / 1000.0,
        )


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


class LagMonitor:
    """Measures consumer lag (broker latest minus persisted offset) on its own thread.

    ``position`` returns the durable position (the offsets listener's); partitions without
    one count from their earliest offset.
    """

    def __init__(
        self,
        probe_factory: Callable[[], Any],
        topic: str,
        position: Callable[[], Offsets],
        metrics: ServiceMetrics,
        stats: RunStats,
        interval: float,
    ) -> None:
        self._probe_factory = probe_factory
        self.topic = topic
        self._position = position
        self._metrics = metrics
        self._stats = stats
        self.interval = interval
        self._stop = threading.Event()
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
                    probe = self._probe_factory()
                self.measure(probe)
            except Exception as exc:
                log.warning('lag measurement failed topic="%s" error="%s"', self.topic, exc)
            if self._stop.wait(self.interval):
                break
        if probe is not None:
            probe.close()

    def measure(self, probe: Any) -> dict[tuple[str, int], int]:
        tps = probe.partitions([self.topic])
        lag = offsets_lag(self._position(), probe.earliest(tps), probe.latest(tps))
        for (t, p), value in lag.items():
            self._metrics.lag.labels(topic=t, partition=str(p)).set(value)
        self._stats.lag = lag
        return lag
