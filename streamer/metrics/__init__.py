"""Run metrics: observed per-batch counts from the scored stream, totalled by a listener
and exported to Prometheus.

The scoring UDF tags each row with its dead-letter ``reason`` (null for outputs), its
end-to-end latency, and the model loads of its Python worker. ``Dataset.observe``
aggregates those per micro-batch on the executors; the totals reach the driver in the query
progress, where :class:`RunStats` adds them up and updates :class:`ServiceMetrics`.
Counting this way is exact across worker processes, without shared state.

Every metric is prefixed ``streamer_``; labels are few and bounded (dead-letter reason,
progress phase, topic and partition of the input topic, offset store kind, model identity).

The package: :mod:`~streamer.metrics.observed` (the executors' per-batch counts),
:mod:`~streamer.metrics.registry` (the Prometheus metrics), :mod:`~streamer.metrics.stats`
(the run's totals, from progress events) and :mod:`~streamer.metrics.lag` (consumer lag).
"""

from streamer.metrics.lag import LagMonitor
from streamer.metrics.observed import (
    BATCH_BUCKETS,
    LATENCY_BUCKETS,
    OBSERVATION,
    PHASES,
    observe,
)
from streamer.metrics.registry import ServiceMetrics
from streamer.metrics.stats import RunStats, Totals

__all__ = [
    "BATCH_BUCKETS",
    "LATENCY_BUCKETS",
    "OBSERVATION",
    "PHASES",
    "LagMonitor",
    "RunStats",
    "ServiceMetrics",
    "Totals",
    "observe",
]
