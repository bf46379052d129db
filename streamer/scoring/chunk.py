"""What travels through the scoring step: a chunk of Kafka records, column by column.

A chunk holds one column per source field (no object per record), as the Kafka source
reads them (:func:`streamer.kafka.chunks.read_chunks`) or as a pandas UDF receives them
(:meth:`Chunk.from_pandas`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from streamer.scoring import records


@dataclass(frozen=True, slots=True)
class Chunk:
    """Records by column: ``keys[i]``, ``values[i]``, ... are the ``i``-th record's."""

    keys: list[bytes | None]
    values: list[bytes | None]
    topics: list[str]
    partitions: list[int]
    offsets: list[int]
    stamps: np.ndarray
    """Record timestamps as float epoch milliseconds, NaN where there is none."""

    def __len__(self) -> int:
        return len(self.values)

    @classmethod
    def from_pandas(
        cls,
        keys: pd.Series,
        values: pd.Series,
        topics: pd.Series,
        partitions: pd.Series,
        offsets: pd.Series,
        timestamps: pd.Series,
    ) -> Chunk:
        """The chunk of source columns as a pandas UDF gets them (in ``SOURCE_COLUMNS`` order)."""
        return cls(
            keys.tolist(),
            values.tolist(),
            topics.tolist(),
            partitions.tolist(),
            offsets.tolist(),
            epoch_ms(timestamps),
        )

    def stamp_list(self) -> list[int | None]:
        """The timestamps as integer epoch milliseconds, None where there is none."""
        return [None if v != v else int(v) for v in self.stamps.tolist()]

    def dead_letter(
        self, pos: int, reason: str, error: str, stamp: int | None, now_ms: int
    ) -> bytes:
        """Record ``pos`` as a dead letter (:func:`.records.dead_letter_value`); ``stamp`` is
        its entry in :meth:`stamp_list`."""
        return records.dead_letter_value(
            reason=reason,
            error=error,
            raw=self.values[pos],
            key=self.keys[pos],
            source=records.source_fields(
                self.topics[pos], int(self.partitions[pos]), int(self.offsets[pos]), stamp
            ),
            failed_at_ms=now_ms,
        )


def epoch_ms(timestamps: pd.Series) -> np.ndarray:
    """Record timestamps as float epoch milliseconds, NaN where there is none.

    Naive timestamps are UTC (the session's time zone).
    """
    if not pd.api.types.is_datetime64_any_dtype(timestamps):
        timestamps = pd.to_datetime(timestamps, utc=True, cache=False)
    if timestamps.dt.tz is not None:
        timestamps = timestamps.dt.tz_convert(None)
    ms = timestamps.to_numpy(dtype="datetime64[ms]").astype(np.int64).astype(np.float64)
    ms[timestamps.isna().to_numpy()] = np.nan
    return ms
