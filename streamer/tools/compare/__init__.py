"""``streamer compare``: the live model's outputs beside the shadow model's, event by event.

Both topics hold output records (:mod:`streamer.scoring.records`). They are read from the
start to the end each partition had when the command started, and matched by the event
they score, ``source`` = (topic, partition, offset). A source seen more than once in a
topic (a batch scored again after a restart) counts as a duplicate; the record kept is the
one scored last (``scored_at``, ties broken by output partition and offset). A value that
is not an output record (not JSON, no ``prediction``, no usable ``source``) is counted as
unparseable and skipped.

On the matched pairs:

- **kind**: ``auto`` takes *classifier* when any record carries ``label``, or a prediction
  is a bool, a string or an object, or every numeric prediction is an integer; otherwise
  *regressor*.
- **agreement** (classifiers): the share of pairs whose class is equal. The class is
  ``label`` when both records carry one, else the prediction itself; for an object
  prediction, the name of its largest numeric column (the argmax).
- **scores** (both kinds): a record's score is its prediction when that is a number; for
  an object, the ``score_column`` given, else its last numeric column (its only one when
  it has one; ``"1"`` for binary class probabilities ``{"0": p0, "1": p1}``). Over the
  pairs where both sides have a score: Pearson correlation, mean and max absolute
  difference, and the mean difference shadow − live.

The statistics are pure functions of :class:`Side` objects (:func:`compare`), apart from
the Kafka reading (:func:`read_sides`) and the optional plot (:func:`plot_differences`).
"""

from streamer.tools.compare.read import read_sides
from streamer.tools.compare.report import format_table, plot_differences, to_dict
from streamer.tools.compare.stats import (
    KINDS,
    Agreement,
    CompareError,
    Comparison,
    Counts,
    Scored,
    ScoreStats,
    Side,
    Source,
    class_of,
    compare,
    detect_kind,
    model_name,
    parse_output,
    pearson,
    score_of,
)

__all__ = [
    "KINDS",
    "Agreement",
    "CompareError",
    "Comparison",
    "Counts",
    "ScoreStats",
    "Scored",
    "Side",
    "Source",
    "class_of",
    "compare",
    "detect_kind",
    "format_table",
    "model_name",
    "parse_output",
    "pearson",
    "plot_differences",
    "read_sides",
    "score_of",
    "to_dict",
]
