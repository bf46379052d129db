"""The data path, top to bottom: source → parse + score → sink, with the listener beside it.

    Kafka ──backend.read_stream──▶ key, value, topic, partition, offset, timestamp
          ──scoring UDF──────────▶ topic (output or dead-letter), key, value, reason, ...
          ──observe──────────────▶ per-batch counts for RunStats
          ──backend.write_stream─▶ Kafka

Parsing and scoring share one pandas UDF, so a row crosses the JVM/Python boundary once
on its way from source to sink, and good and bad records leave through the same sink.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from streamer import metrics
from streamer.kafka import SOURCE_COLUMNS, KafkaBackend
from streamer.offsets import Offsets
from streamer.scoring.model import ModelSpec
from streamer.scoring.udf import ScoringSettings, make_scoring_udf


@dataclass(frozen=True)
class StreamSettings:
    """How the query reads and triggers; the rest comes from the model and scoring settings."""

    input_topic: str
    trigger: str
    max_offsets_per_trigger: int | None
    default_start: str = "earliest"
    fence_file: str | None = None


def scored_stream(source: DataFrame, spec: ModelSpec, scoring: ScoringSettings) -> DataFrame:
    """Source rows → one output or dead-letter row each, observed, ready for the sink."""
    udf = make_scoring_udf(spec, scoring)
    scored = source.select(udf(*[F.col(c) for c in SOURCE_COLUMNS]).alias("r")).select("r.*")
    return metrics.observe(scored).select("topic", "key", "value")


def start_query(
    spark: SparkSession,
    *,
    backend: KafkaBackend,
    spec: ModelSpec,
    scoring: ScoringSettings,
    stream: StreamSettings,
    start_offsets: Offsets | None,
    checkpoint_dir: str,
    query_name: str,
) -> StreamingQuery:
    source = backend.read_stream(
        spark,
        topics=[stream.input_topic],
        start_offsets=start_offsets,
        default_start=stream.default_start,
        max_offsets_per_trigger=stream.max_offsets_per_trigger,
        fence_file=stream.fence_file,
    )
    return backend.write_stream(
        scored_stream(source, spec, scoring),
        checkpoint_dir=checkpoint_dir,
        trigger=stream.trigger,
        query_name=query_name,
    )
