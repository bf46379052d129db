"""The offsets shape and its JSON form, as in ``progress.sources[i].endOffset``."""

from __future__ import annotations

import json
from collections.abc import Mapping

from streamer.errors import OffsetsError

Offsets = dict[str, dict[int, int]]
TP = tuple[str, int]
"""A topic partition: ``(topic, partition)``."""


def parse_offsets(text: str | None) -> Offsets:
    """Parse a source offset JSON (``{"t": {"0": 42}}``); ``None``/``"None"`` means none yet."""
    if text is None or text.strip() in ("", "None", "null"):
        return {}
    try:
        raw = json.loads(text)
        return {
            str(topic): {int(p): int(o) for p, o in partitions.items()}
            for topic, partitions in raw.items()
        }
    except (ValueError, AttributeError, TypeError) as exc:
        raise OffsetsError(
            f'offsets {text[:200]!r} are not JSON of the form {{"topic": {{"0": 42}}}}'
        ) from exc


def format_offsets(offsets: Mapping[str, Mapping[int, int]]) -> str:
    """The JSON form, partitions as string keys in numeric order."""
    return json.dumps(
        {t: {str(p): o for p, o in sorted(ps.items())} for t, ps in sorted(offsets.items())},
        separators=(",", ":"),
    )


def merge_offsets(*maps: Mapping[str, Mapping[int, int]]) -> Offsets:
    """Later maps win per partition; partitions only in earlier maps are kept."""
    out: Offsets = {}
    for m in maps:
        for topic, partitions in m.items():
            out.setdefault(topic, {}).update(partitions)
    return out


def lag(
    position: Mapping[str, Mapping[int, int]],
    earliest: Mapping[tuple[str, int], int],
    latest: Mapping[tuple[str, int], int],
) -> dict[tuple[str, int], int]:
    """Per partition: the broker's latest offset minus the position (its earliest when the
    position has none), never negative."""
    return {
        (t, p): max(0, end - position.get(t, {}).get(p, earliest.get((t, p), 0)))
        for (t, p), end in latest.items()
    }
