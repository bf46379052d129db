"""The recipe users copy: Structured Streaming + ``mlflow.pyfunc.spark_udf``.

    python -m bench.recipe --bootstrap-servers HOST:PORT --input-topic events \
        --output-topic out --model-uri models:/throughput-model@bench \
        --tracking-uri sqlite:///.../mlflow.db --work-dir DIR [--events N]

What the common blog/notebook recipe does, kept as it is:

- ``spark.readStream`` from Kafka. The JVM ``kafka`` connector jar is absent on this
  machine (no internet but PyPI), so the source and the sink are streamer's Python data
  source (``streamer.kafka.PythonKafkaBackend``); a user with the jar would write
  ``.format("kafka")`` and get the same rows ``(key, value, topic, partition, offset,
  timestamp)``.
- A pandas UDF that decodes each value with ``json.loads`` and builds the feature frame
  with ``pandas.json_normalize``.
- ``mlflow.pyfunc.spark_udf(spark, model_uri, result_type="array<double>")`` with the
  default environment manager (``local``), called on ``struct(*features)``.
- ``to_json`` of the result, written back to Kafka, with a regular persistent checkpoint
  directory and the default (as fast as possible) trigger.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd  # at module level: pandas_udf resolves the type hints below by name

from bench.common import steady_state, wait_for_rows
from bench.workload import BOOLS, FEATURES, FLOATS, INTS, STRINGS


def build_query(
    spark: Any,
    *,
    bootstrap: str,
    input_topic: str,
    output_topic: str,
    model_uri: str,
    checkpoint_dir: str,
    max_offsets_per_trigger: int | None,
    query_name: str = "recipe",
) -> Any:
    """Start the recipe's streaming query on ``spark``."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf
    from pyspark.sql.types import (
        BooleanType,
        DoubleType,
        LongType,
        StringType,
        StructField,
        StructType,
    )

    from streamer.kafka import PythonKafkaBackend

    event_schema = StructType(
        [StructField("event_id", StringType())]
        + [StructField(n, DoubleType()) for n in FLOATS]
        + [StructField(n, LongType()) for n in INTS]
        + [StructField(n, StringType()) for n in STRINGS]
        + [StructField(n, BooleanType()) for n in BOOLS]
    )
    columns = event_schema.names

    @pandas_udf(event_schema)  # type: ignore[call-overload]
    def parse_events(values: pd.Series) -> pd.DataFrame:
        return pd.json_normalize(values.apply(json.loads))[columns]

    predict = mlflow.pyfunc.spark_udf(spark, model_uri, result_type="array<double>")

    backend = PythonKafkaBackend(bootstrap, {}, end_offsets=_end_strategy(bootstrap))
    raw = backend.read_stream(
        spark,
        topics=[input_topic],
        start_offsets=None,
        default_start="earliest",
        max_offsets_per_trigger=max_offsets_per_trigger,
    )
    events = raw.select(
        "key",
        "partition",
        "offset",
        parse_events(F.col("value").cast("string")).alias("event"),
    ).select("key", "partition", "offset", "event.*")
    scored = events.withColumn("probability", predict(F.struct(*FEATURES)))
    out = scored.select(
        F.lit(output_topic).alias("topic"),
        F.col("key"),
        F.to_json(
            F.struct(
                F.col("event_id"),
                F.col("probability")[1].alias("score"),
                F.struct("partition", "offset").alias("source"),
            )
        )
        .cast("binary")
        .alias("value"),
    )
    return backend.write_stream(
        out, checkpoint_dir=checkpoint_dir, trigger="0 seconds", query_name=query_name
    )


def _end_strategy(bootstrap: str) -> str:
    from streamer.kafka.probe import resolve_end_offsets

    return resolve_end_offsets("auto", bootstrap, {})


def recipe_session(master: str = "local[2]") -> Any:
    """A plain session, as a user would build it (the UI off, as streamer has it)."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master(master)
        .appName("recipe")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    return spark


def run_recipe(
    *,
    bootstrap: str,
    input_topic: str,
    output_topic: str,
    model_uri: str,
    tracking_uri: str,
    work_dir: Path,
    events: int,
    max_offsets_per_trigger: int | None = 100_000,
    master: str = "local[2]",
    timeout: float = 1800.0,
) -> dict[str, Any]:
    """Run the recipe until ``events`` rows went through (whole batches), then stop.

    Returns the query's progress events (plain dicts, by batch) and timings."""
    import mlflow

    started = time.monotonic()
    mlflow.set_tracking_uri(tracking_uri)
    spark = recipe_session(master)
    try:
        query = build_query(
            spark,
            bootstrap=bootstrap,
            input_topic=input_topic,
            output_topic=output_topic,
            model_uri=model_uri,
            checkpoint_dir=str(work_dir / "recipe-checkpoint"),
            max_offsets_per_trigger=max_offsets_per_trigger,
        )
        query_started = time.monotonic()
        try:
            progress = wait_for_rows(query, events, timeout)
        finally:
            query.stop()
    finally:
        spark.stop()
    return {
        "progress": progress,
        "startup_seconds": query_started - started,
        "seconds": time.monotonic() - started,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--input-topic", required=True)
    parser.add_argument("--output-topic", required=True)
    parser.add_argument("--model-uri", required=True)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--events", type=int, required=True, help="stop after this many rows")
    parser.add_argument("--max-offsets-per-trigger", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args(argv)
    report = run_recipe(
        bootstrap=args.bootstrap_servers,
        input_topic=args.input_topic,
        output_topic=args.output_topic,
        model_uri=args.model_uri,
        tracking_uri=args.tracking_uri,
        work_dir=Path(args.work_dir),
        events=args.events,
        max_offsets_per_trigger=args.max_offsets_per_trigger,
        timeout=args.timeout,
    )
    print(json.dumps(steady_state(report["progress"]), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
