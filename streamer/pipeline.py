"""The data path, top to bottom: source → parse + score → sink, with the listener beside it.

    jvm backend:
    Kafka ──backend.read_stream──▶ key, value, topic, partition, offset, timestamp
          ──scoring UDF──────────▶ topic (output or dead-letter), key, value, reason, ...
          ──observe──────────────▶ per-batch counts for RunStats
          ──backend.write_stream─▶ Kafka

    python backend (``kafka.score_in_source``):
    Kafka ──read_stream(scorer)──▶ read ▸ parse ▸ score ▸ produce to Kafka, in one task
          ──observe──────────────▶ per-batch counts for RunStats
          ──write_stream(noop)───▶ nothing: the records are already in Kafka

    grouped models (``model.group_by``), either backend:
    Kafka ──read_stream──────────▶ source columns
          ──applyInPandas by group▶ each group scored by its own model (a shuffle)
          ──observe ▸ write_stream▶ Kafka

Good and bad records leave through the same producer. On the python path no record
crosses between Python and the JVM; only the observed columns do. A shadow model's records
are produced by the source task beside the main ones, or become a second row per event for
the sink on the UDF path.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from streamer import metrics
from streamer.kafka.backend import SOURCE_COLUMNS, KafkaBackend
from streamer.offsets import Offsets
from streamer.scoring.model import Models, ModelSpec
from streamer.scoring.schema import sample_value
from streamer.scoring.scorer import ScoringSettings
from streamer.scoring.udf import make_scoring_udf

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamSettings:
    """How the query reads and triggers; the rest comes from the model and scoring settings."""

    input_topic: str
    trigger: str
    max_offsets_per_trigger: int | None
    default_start: str = "earliest"
    fence_file: str | None = None


def read_scored(
    spark: SparkSession,
    backend: KafkaBackend,
    models: Models,
    scoring: ScoringSettings,
    *,
    shadow: ModelSpec | None = None,
    dry_run: bool = False,
    **read: Any,
) -> DataFrame:
    """Source rows → one output or dead-letter row each, observed, ready for the sink.

    A backend that scores in its source (the python one, unless ``kafka.score_in_source``
    is off) reads, parses, scores and produces each record in one task, and the rows
    reaching the JVM carry only the observed columns (write them with ``produced=True``);
    ``dry_run`` scores without producing. Otherwise the scoring pandas UDF runs between
    source and sink, and a shadow record becomes a second row for the sink. Grouped models
    need a shuffle (``applyInPandas`` by group), so they always take the second path. The
    records in Kafka are the same either way.
    """
    scorer = models.scorer(scoring, shadow=shadow) if backend.scores_in_source else None
    if scorer is not None:
        scored = backend.read_stream(spark, scorer=scorer, produce=not dry_run, **read)
        return metrics.observe(scored).select("topic", "key", "value")
    scored = models.scores(backend.read_stream(spark, **read), scoring, shadow=shadow)
    scored = metrics.observe(scored)
    sink = ["topic", "key", "value", *(["headers"] if "headers" in scored.columns else [])]
    if shadow is None or scoring.shadow_topic is None:
        return scored.select(*sink)
    both = F.array(
        F.struct("topic", "key", "value"),
        F.struct(
            F.lit(scoring.shadow_topic).alias("topic"),
            F.col("key"),
            F.col("shadow_value").alias("value"),
        ),
    )
    return scored.select(F.explode(both).alias("r")).select("r.*").where(F.col("value").isNotNull())


def produced_in_source(backend: KafkaBackend, models: Models) -> bool:
    """Whether :func:`read_scored` leaves nothing for the sink to write."""
    return backend.scores_in_source and models.group_by is None


def start_query(
    spark: SparkSession,
    *,
    backend: KafkaBackend,
    models: Models,
    scoring: ScoringSettings,
    stream: StreamSettings,
    start_offsets: Offsets | None,
    checkpoint_dir: str,
    query_name: str,
    shadow: ModelSpec | None = None,
) -> StreamingQuery:
    return _write_scored(
        spark,
        backend,
        models,
        scoring,
        shadow,
        read={
            "topics": [stream.input_topic],
            "start_offsets": start_offsets,
            "default_start": stream.default_start,
            "max_offsets_per_trigger": stream.max_offsets_per_trigger,
            "fence_file": stream.fence_file,
        },
        write={
            "checkpoint_dir": checkpoint_dir,
            "trigger": stream.trigger,
            "query_name": query_name,
            "fence_file": stream.fence_file,
        },
    )


def _write_scored(
    spark: SparkSession,
    backend: KafkaBackend,
    models: Models,
    scoring: ScoringSettings,
    shadow: ModelSpec | None,
    *,
    read: dict[str, Any],
    write: dict[str, Any],
    dry_run: bool = False,
) -> StreamingQuery:
    """The streaming plan from source to sink; a ``dry_run`` scores without writing."""
    scored = read_scored(spark, backend, models, scoring, shadow=shadow, dry_run=dry_run, **read)
    if dry_run:
        scored = scored.where(F.col("topic").isNull())  # no scored row passes
    return backend.write_stream(scored, produced=produced_in_source(backend, models), **write)


def warm_up(
    spark: SparkSession,
    *,
    backend: KafkaBackend,
    models: Models,
    scoring: ScoringSettings,
    input_topic: str,
    ends: Callable[[], tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]],
    rows: int,
    checkpoint_dir: str,
    shadow: ModelSpec | None = None,
    timeout: int = 300,
) -> None:
    """Make the first real micro-batch as fast as a steady one, before taking traffic.

    Two steps: load the models in every Python worker (:func:`warm_up_workers`), then run
    the real streaming plan once (``availableNow``) over the input topic's last ``rows``
    records, into the real sink behind a filter no scored row passes (``topic IS NULL``). The
    source's readers, the scoring path, the sink's writers and producers, and the generated
    code are then ready; a first real batch costs what a steady one does (measured: 5.9 s
    without this step, 1.3-1.7 s with it). Nothing is written and no offsets are stored.
    ``ends`` gives the topic's (earliest, latest) offsets; it is called just before the
    warm-up query starts, so it reads about ``rows`` records even while events flow.
    """
    warm_up_workers(spark, models, scoring, rows, shadow=shadow)
    started = time.perf_counter()
    try:
        progress = _warm_up_stream(
            spark,
            backend,
            models,
            scoring,
            shadow,
            input_topic,
            ends,
            rows,
            checkpoint_dir,
            timeout,
        )
    except Exception as exc:  # best effort: only the first real batch is slower without it
        log.warning(
            'stream warm-up failed; the first batch will be slower error="%s"',
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
        )
        return
    if progress is not None:
        log.info(
            'stream warmed up rows="%d" batches="%d" seconds="%.2f"',
            sum(int(p["numInputRows"]) for p in progress),
            len(progress),
            time.perf_counter() - started,
        )


def _warm_up_stream(
    spark: SparkSession,
    backend: KafkaBackend,
    models: Models,
    scoring: ScoringSettings,
    shadow: ModelSpec | None,
    input_topic: str,
    ends: Callable[[], tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]],
    rows: int,
    checkpoint_dir: str,
    timeout: int,
) -> list[dict[str, Any]] | None:
    """The real plan once over the topic's last ``rows`` records; its progress, or None
    when the topic is empty."""
    earliest, latest = ends()
    if all(latest[tp] <= earliest.get(tp, 0) for tp in latest):
        log.info("stream warm-up skipped: the input topic is empty")
        return None
    per_partition = max(1, rows // max(1, len(latest)))
    start: Offsets = {}
    for (topic, partition), end in latest.items():
        start.setdefault(topic, {})[partition] = max(
            earliest.get((topic, partition), 0), end - per_partition
        )
    query = _write_scored(
        spark,
        backend,
        models,
        scoring,
        shadow,
        read={"topics": [input_topic], "start_offsets": start, "default_start": "latest"},
        write={
            "checkpoint_dir": checkpoint_dir,
            "trigger": "0 seconds",
            "query_name": f"warm-up-{uuid.uuid4().hex[:8]}",
            "available_now": True,
        },
        dry_run=True,
    )
    try:
        query.awaitTermination(timeout)
    finally:
        query.stop()
    return list(query.recentProgress)


def warm_up_workers(
    spark: SparkSession,
    models: Models,
    scoring: ScoringSettings,
    rows: int,
    *,
    shadow: ModelSpec | None = None,
) -> dict[str, int]:
    """Load the models in every Python worker and score a sample; the sample's rows by
    destination (output topic or dead-letter reason).

    The sample is one schema-shaped record, repeated, spread over as many partitions as the
    session runs tasks at once. A streaming task holds two Python workers (the Kafka
    source's reader and the scoring UDF), and Spark's worker pool hands idle workers to
    either, so the sample passes through a model-loading ``mapInPandas`` before the UDF: both
    workers of every task load the model, and the stream's UDF finds it loaded whichever it
    gets. A sample the model cannot score still loads it (and is only logged). Grouped
    models are loaded (up to ``cache_size`` of them) but not sampled.
    """
    started = time.perf_counter()
    specs = models.served()
    room = scoring.cache_size - (1 if shadow is not None else 0)
    specs = specs[:room] + ([shadow] if shadow is not None else [])
    loads = [(s.ship_name, s.env_manager) for s in specs]
    capacity = scoring.cache_size
    first = specs[0]
    value = json.dumps({f.name: sample_value(f.dataType) for f in first.input_schema.fields})
    now = datetime.now(UTC)
    parallelism = spark.sparkContext.defaultParallelism
    source = spark.createDataFrame(
        [(None, value.encode(), "warm-up", 0, i, now) for i in range(max(rows, parallelism))],
        "key binary, value binary, topic string, partition int, offset long, timestamp timestamp",
    ).repartition(parallelism)

    def load_model(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from streamer.scoring import cache

        for ship_name, env_manager in loads:
            cache.get_model(ship_name, env_manager=env_manager, capacity=capacity)
        yield from batches

    source = source.mapInPandas(load_model, source.schema)
    scorer = models.scorer(scoring, shadow=shadow)
    if scorer is None:
        source.count()
        log.info(
            'models warmed up models="%d" partitions="%d" seconds="%.2f"',
            len(specs),
            parallelism,
            time.perf_counter() - started,
        )
        return {}
    udf = make_scoring_udf(scorer)
    scored = source.select(udf(*[F.col(c) for c in SOURCE_COLUMNS]).alias("r")).select("r.*")
    destination = F.coalesce(F.col("reason"), F.col("topic"))
    counted = scored.groupBy(destination.alias("to")).agg(F.count("*").alias("n")).collect()
    counts = {r["to"]: r["n"] for r in counted}
    outputs = counts.get(scoring.output_topic, 0)
    log.info(
        'model warmed up rows="%d" scored="%d" partitions="%d" seconds="%.2f"',
        sum(counts.values()),
        outputs,
        parallelism,
        time.perf_counter() - started,
    )
    if not outputs:
        log.warning("warm-up sample not scored (the model rejects zero values); it is loaded")
    return counts
