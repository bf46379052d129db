"""Matching and statistics: output records paired by the event they score, and their
agreement."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import numpy as np

from streamer.errors import StreamerError

KINDS = ("auto", "classifier", "regressor")

Source = tuple[str, int, int]
"""(input topic, partition, offset) of the scored event."""


class CompareError(StreamerError):
    """The topics cannot be compared (missing, empty, unreadable) or the plot cannot be made."""


@dataclass(frozen=True)
class Scored:
    """The fields of one output record that the comparison uses."""

    source: Source
    prediction: Any
    label: Any = None
    has_label: bool = False
    model: str = "?"
    scored_at: int = 0


def model_name(model: Any) -> str:
    """``name@version`` (``name`` alone without a version; ``?`` when unnamed)."""
    if not isinstance(model, Mapping):
        return "?"
    name = model.get("name")
    version = model.get("version")
    name = "?" if name is None else str(name)
    return name if version is None else f"{name}@{version}"


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_output(value: bytes | str | None) -> Scored | None:
    """An output record's fields, or None when ``value`` is not an output record."""
    if value is None:
        return None
    try:
        record = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or "prediction" not in record:
        return None
    source = record.get("source")
    if not isinstance(source, dict):
        return None
    topic, partition, offset = source.get("topic"), source.get("partition"), source.get("offset")
    if not isinstance(topic, str) or not _is_int(partition) or not _is_int(offset):
        return None
    scored_at = record.get("scored_at")
    return Scored(
        source=(topic, partition, offset),
        prediction=record["prediction"],
        label=record.get("label"),
        has_label="label" in record,
        model=model_name(record.get("model")),
        scored_at=scored_at if _is_int(scored_at) else 0,
    )


@dataclass
class Side:
    """One topic's output records, by source. Feed it with :meth:`add`."""

    topic: str
    records: int = 0
    """Every record read, parseable or not."""
    unparseable: int = 0
    duplicates: int = 0
    """Records whose source was already seen in this topic."""
    models: Counter[str] = field(default_factory=Counter)
    """Parseable records per ``name@version``."""
    by_source: dict[Source, Scored] = field(default_factory=dict)
    _rank: dict[Source, tuple[int, int, int]] = field(default_factory=dict, repr=False)

    def add(self, value: bytes | str | None, partition: int = 0, offset: int = 0) -> None:
        """One record of the topic, at (``partition``, ``offset``) of the topic itself."""
        self.records += 1
        scored = parse_output(value)
        if scored is None:
            self.unparseable += 1
            return
        self.models[scored.model] += 1
        rank = (scored.scored_at, partition, offset)
        previous = self._rank.get(scored.source)
        if previous is not None:
            self.duplicates += 1
            if previous > rank:
                return
        self.by_source[scored.source] = scored
        self._rank[scored.source] = rank

    @classmethod
    def of(cls, topic: str, values: Iterable[bytes | str | None]) -> Side:
        """A side from values in topic order (one partition), for tests and small inputs."""
        side = cls(topic)
        for offset, value in enumerate(values):
            side.add(value, 0, offset)
        return side


# ---------------------------------------------------------------------------- statistics


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _pick_score(prediction: Any, score_column: str | None) -> tuple[float | None, str | None]:
    """(score, the object column it came from, or None for a scalar prediction)."""
    if not isinstance(prediction, dict):
        return _number(prediction), None
    if score_column is not None:
        return _number(prediction.get(score_column)), score_column
    numeric = [(column, n) for column, v in prediction.items() if (n := _number(v)) is not None]
    if not numeric:
        return None, None
    column, number = numeric[-1]
    return number, column


def score_of(prediction: Any, score_column: str | None = None) -> float | None:
    """The number compared between the two sides; None when the record has none.

    A numeric prediction is its own score. For an object prediction: ``score_column`` when
    given, else the object's last numeric column (which is its only numeric column when it
    has just one; ``"1"`` for binary class probabilities ``{"0": p0, "1": p1}``).
    """
    return _pick_score(prediction, score_column)[0]


def class_of(record: Scored, use_label: bool) -> Any:
    """What agreement compares: the label, else the prediction (an object's argmax column)."""
    if use_label:
        return record.label
    prediction = record.prediction
    if isinstance(prediction, dict):
        numeric = [(n, c) for c, v in prediction.items() if (n := _number(v)) is not None]
        if numeric:
            return max(numeric, key=lambda pair: pair[0])[1]  # the first of equal maxima
    return prediction


def detect_kind(records: Iterable[Scored]) -> str:
    """``classifier`` or ``regressor`` by the records, as described in the module doc."""
    ints = floats = False
    for record in records:
        prediction = record.prediction
        if record.has_label or isinstance(prediction, (bool, str, dict)):
            return "classifier"
        if isinstance(prediction, float):
            floats = True
        elif isinstance(prediction, int):
            ints = True
    return "classifier" if ints and not floats else "regressor"


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson's r; None with fewer than two pairs or when either side is constant."""
    if len(xs) != len(ys):
        raise ValueError(f"pearson: {len(xs)} x values but {len(ys)} y values")
    if len(xs) < 2:
        return None
    x = np.asarray(xs, dtype=float)
    y = np.asarray(ys, dtype=float)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    dx, dy = x - x.mean(), y - y.mean()
    r = float(np.dot(dx, dy) / math.sqrt(float(np.dot(dx, dx)) * float(np.dot(dy, dy))))
    return max(-1.0, min(1.0, r))


@dataclass(frozen=True)
class Counts:
    live: int
    shadow: int
    matched: int
    live_only: int
    shadow_only: int
    live_duplicates: int
    shadow_duplicates: int
    live_unparseable: int
    shadow_unparseable: int


@dataclass(frozen=True)
class Agreement:
    compared: int
    agree: int
    on_label: int
    """Pairs compared on ``label`` (both records carry one); the rest on the prediction."""
    disagreements: tuple[tuple[Any, Any, int], ...]
    """(live class, shadow class, pairs), most frequent first, at most ten."""

    @property
    def rate(self) -> float | None:
        return self.agree / self.compared if self.compared else None


@dataclass(frozen=True)
class ScoreStats:
    pairs: int
    columns: tuple[str, ...]
    """The object columns the scores came from (empty for numeric predictions)."""
    correlation: float | None
    mean_abs_diff: float
    max_abs_diff: float
    mean_diff: float
    """Mean of shadow − live."""
    live_mean: float
    shadow_mean: float


@dataclass(frozen=True)
class Comparison:
    live_topic: str
    shadow_topic: str
    counts: Counts
    live_models: dict[str, int]
    shadow_models: dict[str, int]
    kind: str
    kind_given: bool
    score_column: str | None
    agreement: Agreement | None
    scores: ScoreStats | None
    differences: tuple[float, ...] = field(repr=False)
    """shadow − live score per pair with both scores, in source order (for the plot)."""


def compare(
    live: Side, shadow: Side, *, kind: str = "auto", score_column: str | None = None
) -> Comparison:
    """The comparison of two sides; raises :class:`CompareError` for an unknown ``kind`` or
    a ``score_column`` that no object prediction has."""
    if kind not in KINDS:
        raise CompareError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    matched = sorted(live.by_source.keys() & shadow.by_source.keys())
    counts = Counts(
        live=live.records,
        shadow=shadow.records,
        matched=len(matched),
        live_only=len(live.by_source) - len(matched),
        shadow_only=len(shadow.by_source) - len(matched),
        live_duplicates=live.duplicates,
        shadow_duplicates=shadow.duplicates,
        live_unparseable=live.unparseable,
        shadow_unparseable=shadow.unparseable,
    )
    pairs = [(live.by_source[s], shadow.by_source[s]) for s in matched]
    if score_column is not None:
        _check_score_column(score_column, [r for pair in pairs for r in pair])
    resolved = kind
    if kind == "auto":
        resolved = detect_kind([*live.by_source.values(), *shadow.by_source.values()])
    return Comparison(
        live_topic=live.topic,
        shadow_topic=shadow.topic,
        counts=counts,
        live_models=dict(live.models.most_common()),
        shadow_models=dict(shadow.models.most_common()),
        kind=resolved,
        kind_given=kind != "auto",
        score_column=score_column,
        agreement=_agreement(pairs) if resolved == "classifier" else None,
        scores=_score_stats(pairs, score_column),
        differences=tuple(_differences(pairs, score_column)),
    )


def _check_score_column(column: str, records: Sequence[Scored]) -> None:
    objects = [r.prediction for r in records if isinstance(r.prediction, dict)]
    if objects and not any(column in p for p in objects):
        seen = sorted({str(c) for p in objects for c in p})
        raise CompareError(
            f"--score-column {column!r} is in none of the matched predictions; their columns: "
            f"{', '.join(seen) or '(none)'}"
        )


def _same_class(a: Any, b: Any) -> bool:
    """Equal as JSON values: numbers by value (1 == 1.0), anything else also by type, so
    that ``true`` is not ``1``."""
    if _number(a) is not None and _number(b) is not None:
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def _agreement(pairs: Sequence[tuple[Scored, Scored]]) -> Agreement:
    agree = on_label = 0
    flips: Counter[tuple[str, str]] = Counter()
    examples: dict[tuple[str, str], tuple[Any, Any]] = {}
    for live, shadow in pairs:
        use_label = live.has_label and shadow.has_label
        on_label += use_label
        a, b = class_of(live, use_label), class_of(shadow, use_label)
        if _same_class(a, b):
            agree += 1
            continue
        key = (json.dumps(a, sort_keys=True), json.dumps(b, sort_keys=True))
        flips[key] += 1
        examples.setdefault(key, (a, b))
    disagreements = tuple((*examples[key], n) for key, n in flips.most_common(10))
    return Agreement(len(pairs), agree, on_label, disagreements)


def _score_pairs(
    pairs: Sequence[tuple[Scored, Scored]], score_column: str | None
) -> tuple[list[float], list[float], set[str]]:
    xs: list[float] = []
    ys: list[float] = []
    columns: set[str] = set()
    for live, shadow in pairs:
        x, x_column = _pick_score(live.prediction, score_column)
        y, y_column = _pick_score(shadow.prediction, score_column)
        if x is None or y is None:
            continue
        xs.append(x)
        ys.append(y)
        columns.update(c for c in (x_column, y_column) if c is not None)
    return xs, ys, columns


def _differences(pairs: Sequence[tuple[Scored, Scored]], score_column: str | None) -> list[float]:
    xs, ys, _ = _score_pairs(pairs, score_column)
    return [y - x for x, y in zip(xs, ys)]


def _score_stats(
    pairs: Sequence[tuple[Scored, Scored]], score_column: str | None
) -> ScoreStats | None:
    xs, ys, columns = _score_pairs(pairs, score_column)
    if not xs:
        return None
    x = np.asarray(xs)
    y = np.asarray(ys)
    diff = y - x
    return ScoreStats(
        pairs=len(xs),
        columns=tuple(sorted(columns)),
        correlation=pearson(xs, ys),
        mean_abs_diff=float(np.abs(diff).mean()),
        max_abs_diff=float(np.abs(diff).max()),
        mean_diff=float(diff.mean()),
        live_mean=float(x.mean()),
        shadow_mean=float(y.mean()),
    )
