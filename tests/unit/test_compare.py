"""streamer compare: parsing, matching and statistics on hand-built output records."""

from __future__ import annotations

import json
import statistics

import pytest

from streamer import cli
from streamer.scoring.records import output_value, source_fields
from streamer.tools.compare import (
    CompareError,
    Scored,
    Side,
    class_of,
    compare,
    detect_kind,
    format_table,
    parse_output,
    pearson,
    plot_differences,
    score_of,
    to_dict,
)

INPUT = "transactions"


def out(
    offset: int,
    prediction,
    *,
    label=None,
    with_label: bool = False,
    model: str = "fraud",
    version: str | None = "1",
    partition: int = 0,
    scored_at: int = 1_000,
) -> bytes:
    return output_value(
        key=f"e-{offset}".encode(),
        prediction=prediction,
        label=label,
        with_label=with_label,
        model_name=model,
        model_version=version,
        source=source_fields(INPUT, partition, offset, 500 + offset),
        scored_at_ms=scored_at,
    )


def side(topic: str, values) -> Side:
    return Side.of(topic, values)


# ---------------------------------------------------------------------------- parsing


def test_parse_output_reads_the_record_format():
    scored = parse_output(out(7, 0.25, label=False, with_label=True, version="3", partition=2))
    assert scored == Scored(
        source=(INPUT, 2, 7),
        prediction=0.25,
        label=False,
        has_label=True,
        model="fraud@3",
        scored_at=1_000,
    )
    no_label = parse_output(out(1, {"0": 0.9, "1": 0.1}, version=None))
    assert no_label is not None
    assert no_label.has_label is False
    assert no_label.model == "fraud"
    assert no_label.prediction == {"0": 0.9, "1": 0.1}


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"source": {"topic": "t", "partition": 0, "offset": 1}}',  # no prediction
        b'{"prediction": 1}',  # no source
        b'{"prediction": 1, "source": {"topic": "t", "partition": 0, "offset": "1"}}',
        b'{"prediction": 1, "source": {"topic": "t", "partition": true, "offset": 1}}',
        b'{"reason": "not_json", "error": "x", "value": "{", "source": {"topic": "t", '
        b'"partition": 0, "offset": 1}}',  # a dead letter
    ],
)
def test_parse_output_rejects_what_is_not_an_output_record(value):
    assert parse_output(value) is None


# ---------------------------------------------------------------------------- matching


def test_unmatched_duplicates_and_unparseable_are_counted():
    live = side("live", [out(0, 0.1), out(1, 0.2), out(2, 0.3), out(2, 0.35), b"junk"])
    shadow = side("shadow", [out(1, 0.2), out(2, 0.3), out(3, 0.4), out(4, 0.5), out(4, 0.5)])
    counts = compare(live, shadow).counts
    assert (counts.live, counts.shadow) == (5, 5)
    assert counts.matched == 2  # offsets 1 and 2
    assert (counts.live_only, counts.shadow_only) == (1, 2)  # 0 | 3, 4
    assert (counts.live_duplicates, counts.shadow_duplicates) == (1, 1)
    assert (counts.live_unparseable, counts.shadow_unparseable) == (1, 0)


def test_a_duplicate_keeps_the_record_scored_last():
    # Later in the topic and later scored: replaces.
    live = side("live", [out(0, 0.1, scored_at=1), out(0, 0.9, scored_at=2)])
    assert live.by_source[(INPUT, 0, 0)].prediction == 0.9
    # Later in the topic but scored earlier (another partition of the output topic, read
    # first): the one scored last stays.
    late = Side("live")
    late.add(out(0, 0.7, scored_at=5), partition=1, offset=0)
    late.add(out(0, 0.2, scored_at=3), partition=0, offset=9)
    assert late.by_source[(INPUT, 0, 0)].prediction == 0.7
    assert late.duplicates == 1
    # Same scored_at: the higher output offset wins.
    tie = side("live", [out(0, 0.1), out(0, 0.4)])
    assert tie.by_source[(INPUT, 0, 0)].prediction == 0.4


def test_sources_differ_by_partition_and_topic():
    live = side("live", [out(0, 0.1, partition=0), out(0, 0.2, partition=1)])
    assert len(live.by_source) == 2 and live.duplicates == 0


def test_models_are_counted_per_side():
    live = side("live", [out(0, 0.1, version="3"), out(1, 0.1, version="3"), b"x"])
    shadow = side("shadow", [out(0, 0.1, model="ch", version="1"), out(1, 0.1, model="ch")])
    result = compare(live, shadow)
    assert result.live_models == {"fraud@3": 2}
    assert result.shadow_models == {"ch@1": 2}


# ---------------------------------------------------------------------------- kind


@pytest.mark.parametrize(
    ("records", "kind"),
    [
        ([Scored((INPUT, 0, 0), 0.3, False, True)], "classifier"),  # a label
        ([Scored((INPUT, 0, 0), True)], "classifier"),
        ([Scored((INPUT, 0, 0), "fraud")], "classifier"),
        ([Scored((INPUT, 0, 0), {"0": 0.2, "1": 0.8})], "classifier"),
        ([Scored((INPUT, 0, 0), 1), Scored((INPUT, 0, 1), 0)], "classifier"),  # ints only
        ([Scored((INPUT, 0, 0), 1), Scored((INPUT, 0, 1), 0.5)], "regressor"),
        ([Scored((INPUT, 0, 0), 12.5), Scored((INPUT, 0, 1), None)], "regressor"),
    ],
)
def test_detect_kind(records, kind):
    assert detect_kind(records) == kind


def test_kind_can_be_forced_and_is_validated():
    live = side("l", [out(0, 0.2), out(1, 0.6)])
    shadow = side("s", [out(0, 0.2), out(1, 0.7)])
    assert compare(live, shadow).kind == "regressor"
    forced = compare(live, shadow, kind="classifier")
    assert forced.kind == "classifier" and forced.kind_given
    assert forced.agreement is not None and forced.agreement.agree == 1  # 0.2 == 0.2 only
    with pytest.raises(CompareError, match="kind"):
        compare(live, shadow, kind="ranker")


# ---------------------------------------------------------------------------- agreement


def test_agreement_on_labels_when_both_carry_one():
    probs = [(0.9, 0.8), (0.2, 0.6), (0.7, 0.4), (0.1, 0.3), (0.6, 0.55)]
    live = side("l", [out(i, p, label=p >= 0.5, with_label=True) for i, (p, _) in enumerate(probs)])
    shadow = side(
        "s", [out(i, q, label=q >= 0.5, with_label=True) for i, (_, q) in enumerate(probs)]
    )
    result = compare(live, shadow)
    assert result.kind == "classifier"
    a = result.agreement
    assert a is not None
    assert (a.compared, a.agree, a.on_label) == (5, 3, 5)  # offsets 1 and 2 flip
    assert a.rate == pytest.approx(0.6)
    assert sorted(a.disagreements, key=str) == [(False, True, 1), (True, False, 1)]


def test_agreement_falls_back_to_the_prediction_without_labels():
    live = side("l", [out(0, "a"), out(1, "b"), out(2, "c"), out(3, True), out(4, 1)])
    shadow = side("s", [out(0, "a"), out(1, "c"), out(2, "c"), out(3, 1), out(4, 1.0)])
    a = compare(live, shadow).agreement
    assert a is not None
    # "b" vs "c" disagrees; true vs 1 disagrees (a bool is not a number); 1 vs 1.0 agrees.
    assert (a.compared, a.agree, a.on_label) == (5, 3, 0)
    assert ("b", "c", 1) in a.disagreements and (True, 1, 1) in a.disagreements


def test_agreement_uses_the_prediction_when_only_one_side_has_a_label():
    live = side("l", [out(0, "x", label=True, with_label=True)])
    shadow = side("s", [out(0, "x")])
    a = compare(live, shadow).agreement
    assert a is not None and (a.agree, a.on_label) == (1, 0)


def test_agreement_on_object_predictions_is_on_the_argmax_column():
    live = side("l", [out(0, {"0": 0.9, "1": 0.1}), out(1, {"0": 0.4, "1": 0.6})])
    shadow = side("s", [out(0, {"0": 0.7, "1": 0.3}), out(1, {"0": 0.55, "1": 0.45})])
    a = compare(live, shadow).agreement
    assert a is not None
    assert (a.compared, a.agree) == (2, 1)
    assert a.disagreements == (("1", "0", 1),)
    assert class_of(Scored((INPUT, 0, 0), {"a": 0.5, "b": 0.5}), use_label=False) == "a"


# ---------------------------------------------------------------------------- scores


@pytest.mark.parametrize(
    ("prediction", "column", "score"),
    [
        (0.25, None, 0.25),
        (3, None, 3.0),
        (True, None, None),  # a bool is a label, not a score
        ("fraud", None, None),
        (None, None, None),
        (0.25, "1", 0.25),  # a numeric prediction is its own score, whatever the column
        ({"0": 0.9, "1": 0.1}, None, 0.1),  # binary probabilities: "1"
        ({"0": 0.9, "1": 0.1}, "0", 0.9),
        ({"class": "a", "p": 0.3}, None, 0.3),  # the only numeric value
        ({"a": 0.2, "b": 0.5, "c": 0.3}, None, 0.3),  # the last numeric column
        ({"a": 0.2, "flag": True, "name": "x"}, None, 0.2),
        ({"class": "a"}, None, None),
        ({"0": 0.9}, "1", None),
    ],
)
def test_score_of(prediction, column, score):
    assert score_of(prediction, column) == score


def test_correlation_and_differences_match_an_independent_computation():
    xs = [0.1, 0.4, 0.35, 0.8, 0.55, 0.05, 0.9]
    ys = [0.15, 0.3, 0.5, 0.85, 0.5, 0.2, 0.7]
    live = side("l", [out(i, x) for i, x in enumerate(xs)])
    shadow = side("s", [out(i, y) for i, y in enumerate(ys)])
    s = compare(live, shadow).scores
    assert s is not None
    diffs = [y - x for x, y in zip(xs, ys)]
    assert s.pairs == len(xs)
    assert s.correlation == pytest.approx(statistics.correlation(xs, ys))
    assert s.mean_abs_diff == pytest.approx(statistics.fmean(abs(d) for d in diffs))
    assert s.max_abs_diff == pytest.approx(0.2)
    assert s.mean_diff == pytest.approx(statistics.fmean(diffs))
    assert (s.live_mean, s.shadow_mean) == (
        pytest.approx(statistics.fmean(xs)),
        pytest.approx(statistics.fmean(ys)),
    )


def test_scores_skip_pairs_without_a_number_on_both_sides():
    live = side("l", [out(0, 0.2), out(1, None), out(2, 0.5), out(3, 0.9)])
    shadow = side("s", [out(0, 0.4), out(1, 0.3), out(2, None), out(3, 0.6)])
    result = compare(live, shadow)
    assert result.scores is not None and result.scores.pairs == 2
    assert result.scores.mean_abs_diff == pytest.approx((0.2 + 0.3) / 2)
    assert result.differences == pytest.approx((0.2, -0.3))


def test_object_scores_use_the_last_numeric_column_or_the_one_given():
    live_p = [{"0": 0.9, "1": 0.1}, {"0": 0.2, "1": 0.8}, {"0": 0.6, "1": 0.4}]
    shadow_p = [{"0": 0.8, "1": 0.2}, {"0": 0.5, "1": 0.5}, {"0": 0.6, "1": 0.4}]
    live = side("l", [out(i, p) for i, p in enumerate(live_p)])
    shadow = side("s", [out(i, p) for i, p in enumerate(shadow_p)])
    auto = compare(live, shadow).scores
    assert auto is not None and auto.columns == ("1",)
    assert auto.mean_diff == pytest.approx((0.1 - 0.3 + 0.0) / 3)
    given = compare(live, shadow, score_column="0").scores
    assert given is not None and given.columns == ("0",)
    assert given.mean_diff == pytest.approx((-0.1 + 0.3 + 0.0) / 3)
    assert given.correlation == pytest.approx(
        statistics.correlation([0.9, 0.2, 0.6], [0.8, 0.5, 0.6])
    )


def test_an_unknown_score_column_is_an_error_naming_the_columns():
    live = side("l", [out(0, {"0": 0.9, "1": 0.1})])
    shadow = side("s", [out(0, {"0": 0.8, "1": 0.2})])
    with pytest.raises(CompareError, match=r"'2'.*columns: 0, 1"):
        compare(live, shadow, score_column="2")


def test_pearson():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert pearson([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert pearson([1], [1]) is None
    assert pearson([0.1, 0.1, 0.1], [1, 2, 3]) is None  # constant: undefined, not 0 or nan
    with pytest.raises(ValueError):
        pearson([1, 2], [1])


def test_no_matched_records_gives_no_statistics():
    result = compare(side("l", [out(0, 0.1)]), side("s", [out(1, 0.1)]))
    assert result.counts.matched == 0
    assert result.scores is None and result.differences == ()
    assert "no pair with a numeric score" in format_table(result)


# ---------------------------------------------------------------------------- rendering


def _classifier_comparison():
    live = side(
        "preds",
        [out(i, p, label=p >= 0.5, with_label=True) for i, p in enumerate([0.9, 0.2, 0.7, 0.1])],
    )
    shadow = side(
        "preds.shadow",
        [
            out(i, p, label=p >= 0.5, with_label=True, model="fraud", version="2")
            for i, p in enumerate([0.8, 0.6, 0.75, 0.2])
        ],
    )
    return compare(live, shadow)


def test_table_is_aligned_and_holds_the_numbers():
    table = format_table(_classifier_comparison())
    lines = table.splitlines()
    assert lines[0].split() == ["live", "shadow"]
    header_live = lines[0].index("live")
    header_shadow = lines[0].index("shadow")
    topic = next(line for line in lines if line.startswith("topic"))
    assert topic.index("preds") == header_live
    assert topic.index("preds.shadow") == header_shadow
    assert topic.split() == ["topic", "preds", "preds.shadow"]
    assert next(x for x in lines if x.startswith("models")).split() == [
        "models",
        "fraud@1",
        "(4)",
        "fraud@2",
        "(4)",
    ]
    rows = {line[:header_live].strip(): line[header_live:] for line in lines if line}
    assert rows["matched"] == "4"
    assert rows["kind"] == "classifier (auto)"
    assert rows["agreement"] == "75.00% (3 of 4 agree; on label)"
    assert rows["disagreements"] == "live false -> shadow true: 1"
    assert rows["mean abs diff"] == f"{(0.1 + 0.4 + 0.05 + 0.1) / 4:.6g}"
    assert all(line == line.rstrip() for line in lines)


def test_json_document_round_trips():
    document = json.loads(json.dumps(to_dict(_classifier_comparison())))
    assert document["counts"]["matched"] == 4
    assert document["agreement"]["rate"] == pytest.approx(0.75)
    assert document["agreement"]["disagreements"] == [{"live": False, "shadow": True, "count": 1}]
    assert document["scores"]["mean_abs_diff"] == pytest.approx(0.1625)
    assert document["models"] == {"live": {"fraud@1": 4}, "shadow": {"fraud@2": 4}}
    assert document["kind"] == "classifier" and document["kind_given"] is False


def test_regressor_table_has_no_agreement():
    live = side("l", [out(0, 1.5), out(1, 2.5)])
    shadow = side("s", [out(0, 1.0), out(1, 3.5)])
    result = compare(live, shadow)
    assert result.agreement is None
    table = format_table(result)
    assert "agreement" not in table
    assert "max abs diff" in table


def test_plot_writes_a_png_and_refuses_without_scores(tmp_path):
    path = tmp_path / "diff.png"
    plot_differences(_classifier_comparison(), str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    labels_only = compare(side("l", [out(0, "a")]), side("s", [out(0, "b")]))
    with pytest.raises(CompareError, match="no matched pair has a numeric score"):
        plot_differences(labels_only, str(tmp_path / "none.png"))
    assert not (tmp_path / "none.png").exists()


# ---------------------------------------------------------------------------- CLI


def test_cli_help_names_the_env_fallbacks(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["compare", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for var in (
        "STREAMER_COMPARE_LIVE",
        "STREAMER_COMPARE_SHADOW",
        "KAFKA_BOOTSTRAP_SERVERS",
        "STREAMER_CONFIG",
        "STREAMER_COMPARE_SCORE_COLUMN",
        "STREAMER_COMPARE_KIND",
        "STREAMER_COMPARE_TIMEOUT",
    ):
        assert f"env {var}" in text


def test_cli_requires_both_topics(capsys, monkeypatch):
    monkeypatch.delenv("STREAMER_COMPARE_SHADOW", raising=False)
    monkeypatch.delenv("STREAMER_CONFIG", raising=False)
    assert cli.main(["compare", "--live", "a"]) == 2
    assert "--shadow" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--live", "a", "--shadow", "a"], "same topic"),
        (["--live", "a", "--shadow", "b", "--timeout", "0"], "--timeout"),
    ],
)
def test_cli_rejects_bad_combinations_before_reading(capsys, args, message):
    assert cli.main(["compare", *args, "--bootstrap-servers", "127.0.0.1:1"]) == 2
    assert message in capsys.readouterr().err


def test_cli_rejects_a_bad_kind_from_the_env(capsys, monkeypatch):
    monkeypatch.setenv("STREAMER_COMPARE_KIND", "ranker")
    assert cli.main(["compare", "--live", "a", "--shadow", "b"]) == 2
    assert "--kind 'ranker'" in capsys.readouterr().err
