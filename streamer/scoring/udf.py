"""Executor side: the scoring step (:class:`.scorer.Scorer`) as a pandas UDF, iterator form,
between the source and the sink (when the source does not score as it reads)."""

from collections.abc import Iterator
from typing import Any

import pandas as pd
from pyspark.sql.functions import pandas_udf

from streamer.scoring.chunk import Chunk
from streamer.scoring.scorer import OUTPUT_TYPE, Scorer


def make_scoring_udf(scorer: Scorer) -> Any:
    """The pandas UDF that scores (key, value, topic, partition, offset, timestamp) rows."""

    @pandas_udf(OUTPUT_TYPE)  # type: ignore[call-overload]
    def score(
        batches: Iterator[tuple[pd.Series, pd.Series, pd.Series, pd.Series, pd.Series, pd.Series]],
    ) -> Iterator[pd.DataFrame]:
        for columns in batches:
            yield pd.DataFrame(scorer.score(Chunk.from_pandas(*columns)))

    return score
