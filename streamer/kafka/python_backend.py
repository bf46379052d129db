"""The ``python`` backend: streamer's Python Data Source on confluent-kafka
(:mod:`streamer.kafka.pysource`), which runs anywhere."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from streamer.kafka.backend import KafkaBackend


@dataclass(eq=False, repr=False)  # repr: the client settings may hold secrets
class PythonKafkaBackend(KafkaBackend):
    """streamer's Python Data Source on confluent-kafka. The source fences itself
    (``fenceFile``); the sink needs no fence of its own."""

    name: ClassVar[str] = "python"
    format: ClassVar[str] = "streamer_kafka"
    fences: ClassVar[bool] = True

    end_offsets: str = "list"
    """How the source finds partition ends: ``list`` or ``fetch`` (see ``OffsetProbe``)."""
    score_in_source: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.scores_in_source = self.score_in_source

    def _scorer_option(self, scorer: Any) -> str:
        from streamer.kafka.pysource import scorer_option

        return scorer_option(scorer)

    def _extra_source_options(self, default_start: str, fence_file: str | None) -> dict[str, str]:
        options = {"endOffsets": self.end_offsets, "startingOffsetsDefault": default_start}
        if fence_file:
            options["fenceFile"] = fence_file
        return options

    # Imported only when used: the data source needs the pinned pyspark's streaming Python
    # Data Source API (admission control, Arrow writer), which an EMR runtime's older
    # PySpark may lack; the jvm backend never needs it.
    def read_stream(self, spark: SparkSession, **kwargs: Any) -> DataFrame:
        _register(spark)
        return super().read_stream(spark, **kwargs)

    def write_stream(self, df: DataFrame, **kwargs: Any) -> StreamingQuery:
        _register(df.sparkSession)
        return super().write_stream(df, **kwargs)


def _register(spark: SparkSession) -> None:
    """Register the Python data source, usable from the calling thread.

    Spark looks a Python data source up in the JVM thread's *active* session. A Python
    thread gets its own JVM thread (py4j pinned threads), which has none until some call
    sets it (``createDataFrame`` does; ``readStream``/``writeStream`` do not), so a query
    started from such a thread failed with DATA_SOURCE_NOT_FOUND (seen in the test suite).
    PySpark has no public call for this; ``createDataFrame`` makes the same one.
    """
    from streamer.kafka.pysource import KafkaDataSource

    spark.dataSource.register(KafkaDataSource)
    jvm = spark._jvm
    assert jvm is not None
    jvm.SparkSession.setActiveSession(spark._jsparkSession)
