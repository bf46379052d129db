"""The per-batch observation: what the executors count in each micro-batch of the scored
stream (``Dataset.observe``), exact across Python workers without shared state."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from streamer.scoring.records import REASONS

OBSERVATION = "streamer"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
BATCH_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)
PHASES = ("addBatch", "walCommit", "commitOffsets", "latestOffset", "queryPlanning", "getBatch")


def bucket_name(le: float) -> str:
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
    cols += [F.count_if(latency <= le * 1000).alias(bucket_name(le)) for le in LATENCY_BUCKETS]
    cols += [F.count_if(F.col("reason") == r).alias(f"dead_{r}") for r in REASONS]
    return cols


def observe(scored: DataFrame) -> DataFrame:
    """Attach the per-batch observation to the scored stream (before the sink)."""
    return scored.observe(OBSERVATION, *_observed_columns())
