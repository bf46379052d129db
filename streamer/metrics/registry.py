"""The Prometheus side: one service's metrics in their own registry, fed per batch."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily, Metric

from streamer.metrics.observed import BATCH_BUCKETS, LATENCY_BUCKETS, PHASES, bucket_name
from streamer.scoring.records import REASONS


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
        self.registry = CollectorRegistry()
        self._counter = partial(Counter, registry=self.registry)
        self._gauge = partial(Gauge, registry=self.registry)
        self._stream_metrics()
        self._model_metrics()
        self._handoff_metrics()

    def _stream_metrics(self) -> None:
        """The micro-batches: rows in and out, durations, latency, lag, the offset store."""
        counter, gauge = self._counter, self._gauge
        self.batches = counter("streamer_batches", "Completed micro-batches")
        self.input_rows = counter("streamer_input_rows", "Records read from the input topic")
        self.output_rows = counter(
            "streamer_output_rows", "Predictions written to the output topic"
        )
        self.dead_letters = counter(
            "streamer_dead_letters", "Records sent to the dead-letter topic", ["reason"]
        )
        for reason in REASONS:
            self.dead_letters.labels(reason=reason)
        self.batch_duration = Histogram(
            "streamer_batch_duration_seconds",
            "Micro-batch duration (triggerExecution)",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.phase = gauge(
            "streamer_batch_phase_seconds",
            "Duration of each phase of the last micro-batch",
            ["phase"],
        )
        self.input_rate = gauge(
            "streamer_input_rows_per_second", "Input rate of the last micro-batch"
        )
        self.processing_rate = gauge(
            "streamer_processed_rows_per_second", "Processing rate of the last micro-batch"
        )
        self.lag = gauge(
            "streamer_consumer_lag",
            "Broker's latest offset minus the persisted offset, per input partition",
            ["topic", "partition"],
        )
        self.e2e_latency = _AccumulatedHistogram(
            "streamer_end_to_end_latency_seconds",
            "Scoring time minus the Kafka record timestamp, per scored record",
            LATENCY_BUCKETS,
        )
        self.registry.register(self.e2e_latency)
        self.last_batch = gauge(
            "streamer_last_batch_timestamp_seconds",
            "When the last micro-batch completed (Unix time)",
        )
        self.query_active = gauge("streamer_query_active", "1 while the streaming query runs")
        self.offset_store_failures = counter(
            "streamer_offset_store_failures",
            "Offset persists that failed (retried with the next progress event)",
            ["store"],
        )
        self.offsets_skipped = counter(
            "streamer_offsets_skipped_events",
            "Events skipped at start-up because the broker no longer held them",
            ["topic"],
        )

    def _model_metrics(self) -> None:
        """The model served, its loads and swaps, and the shadow beside it."""
        counter, gauge = self._counter, self._gauge
        self.model_info = gauge(
            "streamer_model_info", "The model being served", ["name", "version", "uri"]
        )
        self.model_loads = counter("streamer_model_loads", "Model loads by Python worker processes")
        self.model_swaps = counter(
            "streamer_model_swaps",
            "New model versions seen by model.follow_alias: swapped in, or refused by validation",
            ["outcome"],
        )
        for outcome in ("swapped", "refused"):
            self.model_swaps.labels(outcome=outcome)
        self.shadow_enabled = gauge(
            "streamer_shadow_enabled",
            "1 while a shadow model scores beside the model; 0 when configured but off",
        )
        self.shadow_outputs = counter(
            "streamer_shadow_outputs", "Shadow model records produced to the shadow topic"
        )
        self.shadow_failures = counter(
            "streamer_shadow_failures",
            "Parsed records without a shadow record: not scored, or dropped (never the output's)",
        )

    def _handoff_metrics(self) -> None:
        """The blue-green handoff: the lease held, and what the last handoff cost."""
        counter, gauge = self._counter, self._gauge
        self.lease_epoch = gauge(
            "streamer_lease_epoch", "Epoch of the handoff lease this instance holds"
        )
        self.handoffs = counter(
            "streamer_handoffs",
            "Leases acquired, by how: new, released (handed over) or stale (after timeout)",
            ["how"],
        )
        self.handoff_gap = gauge(
            "streamer_handoff_gap_seconds",
            "Last handoff: from the previous owner's last output batch to this one's first",
        )
        self.handoff_lost = gauge(
            "streamer_handoff_lost_events",
            "Last handoff: events between the previous owner's end and this one's start",
        )
        self.handoff_duplicates = gauge(
            "streamer_handoff_duplicate_events",
            "Last handoff: events the previous owner had read that this one reads again "
            "(exact when released, an upper bound after a stale takeover)",
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
            [observed[bucket_name(le)] for le in LATENCY_BUCKETS],
            int(observed["e2e_count"]),
            float(observed["e2e_sum_ms"]) / 1000.0,
        )
