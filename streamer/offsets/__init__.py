"""The service's position: the ``{"topic": {partition: next_offset}}`` map of what completed
micro-batches consumed, persisted by a query listener and read back at start-up.

Spark's checkpoint is a throwaway temp dir; this is the only durable state.
"""

from streamer.offsets.core import Offsets, format_offsets, merge_offsets, parse_offsets
from streamer.offsets.listener import OffsetsListener
from streamer.offsets.stores import OffsetStore, StoredOffsets, open_store

__all__ = [
    "OffsetStore",
    "Offsets",
    "OffsetsListener",
    "StoredOffsets",
    "format_offsets",
    "merge_offsets",
    "open_store",
    "parse_offsets",
]
