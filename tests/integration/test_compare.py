"""``streamer compare`` against a real broker: two output topics produced with the service's
own record writer, compared by the CLI, checked against statistics computed here."""

from __future__ import annotations

import json
import random
import statistics

import pytest

from streamer import cli
from streamer.scoring.records import output_values
from tests.helpers import produce

pytestmark = pytest.mark.integration

INPUT = "transactions-in"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _records(
    events: list[int],
    predictions: dict[int, object],
    *,
    threshold: float | None,
    model: str,
    version: str,
    scored_at: int,
) -> list[tuple[bytes, bytes]]:
    """Output records for ``events`` (input partition = event % 3, offset = event)."""
    labels = None
    if threshold is not None:
        labels = [float(predictions[e]) >= threshold for e in events]  # type: ignore[arg-type]
    values = output_values(
        keys=[f"e-{e}".encode() for e in events],
        predictions=[predictions[e] for e in events],
        labels=labels,
        model_name=model,
        model_version=version,
        topic=[INPUT] * len(events),
        partition=[e % 3 for e in events],
        offset=list(events),
        timestamp_ms=[1_700_000_000_000 + e for e in events],
        scored_at_ms=scored_at,
    )
    return [(f"e-{e}".encode(), v) for e, v in zip(events, values)]


def _compare(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["compare", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_compare_classifier_topics(kafka_bootstrap, new_topic, capsys, tmp_path):
    rng = random.Random(7)
    n = 300
    live_p = {e: round(rng.random(), 4) for e in range(n)}
    # The shadow agrees roughly; ten events are pushed across the threshold on purpose.
    shadow_p = {
        e: min(1.0, max(0.0, round(p + rng.uniform(-0.08, 0.08), 4))) for e, p in live_p.items()
    }
    for e in range(0, 100, 10):
        shadow_p[e] = 0.95 if live_p[e] < 0.5 else 0.05
    rescored = {5: 0.99}  # the live side scored event 5 again after a restart: the last counts

    live_topic, shadow_topic = new_topic(partitions=2), new_topic()
    live_events = [e for e in range(n) if e != 17]  # 17: shadow only
    shadow_events = [e for e in range(n) if e not in (40, 41)]  # 40, 41: live only
    live_records = _records(
        live_events, live_p, threshold=0.5, model="fraud", version="3", scored_at=1_000
    )
    produce(kafka_bootstrap, live_topic, live_records[::2], partition=0)
    produce(kafka_bootstrap, live_topic, live_records[1::2], partition=1)
    produce(
        kafka_bootstrap,
        live_topic,
        [
            *_records([5], rescored, threshold=0.5, model="fraud", version="3", scored_at=2_000),
            (b"bad", b"{not json"),
        ],
        partition=0,
    )
    produce(
        kafka_bootstrap,
        shadow_topic,
        _records(
            shadow_events, shadow_p, threshold=0.5, model="fraud", version="4", scored_at=1_500
        ),
    )

    # What the report must say, computed here from the predictions.
    final_live = {**{e: live_p[e] for e in live_events}, **rescored}
    matched = sorted(final_live.keys() & set(shadow_events))
    xs = [final_live[e] for e in matched]
    ys = [shadow_p[e] for e in matched]
    agree = sum((x >= 0.5) == (y >= 0.5) for x, y in zip(xs, ys))
    diffs = [y - x for x, y in zip(xs, ys)]
    assert len(matched) == n - 3 and agree < len(matched)  # the test data disagrees somewhere

    plot = tmp_path / "diff.png"
    code, out, err = _compare(
        capsys,
        "--live", live_topic,
        "--shadow", shadow_topic,
        "--bootstrap-servers", kafka_bootstrap,
        "--json",
        "--plot", str(plot),
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["counts"] == {
        "live": len(live_events) + 2,
        "shadow": len(shadow_events),
        "matched": len(matched),
        "live_only": 2,
        "shadow_only": 1,
        "live_duplicates": 1,
        "shadow_duplicates": 0,
        "live_unparseable": 1,
        "shadow_unparseable": 0,
    }
    assert report["kind"] == "classifier"
    assert report["models"] == {
        "live": {"fraud@3": len(live_events) + 1},
        "shadow": {"fraud@4": len(shadow_events)},
    }
    assert report["agreement"]["compared"] == len(matched)
    assert report["agreement"]["agree"] == agree
    assert report["agreement"]["rate"] == pytest.approx(agree / len(matched))
    assert report["agreement"]["on_label"] == len(matched)
    scores = report["scores"]
    assert scores["pairs"] == len(matched)
    assert scores["correlation"] == pytest.approx(statistics.correlation(xs, ys))
    assert scores["mean_abs_diff"] == pytest.approx(statistics.fmean(abs(d) for d in diffs))
    assert scores["max_abs_diff"] == pytest.approx(max(abs(d) for d in diffs))
    assert scores["mean_diff"] == pytest.approx(statistics.fmean(diffs))
    assert report["plot"] == str(plot)
    assert plot.read_bytes()[:8] == PNG_MAGIC

    # The table says the same, aligned.
    code, out, err = _compare(
        capsys,
        "--live",
        live_topic,
        "--shadow",
        shadow_topic,
        "--bootstrap-servers",
        kafka_bootstrap,
    )
    assert code == 0, err
    rows = {line.split("  ")[0]: " ".join(line.split()[1:]) for line in out.splitlines() if line}
    assert rows["matched"] == str(len(matched))
    assert rows["records"] == f"{len(live_events) + 2} {len(shadow_events)}"
    assert rows["unmatched"] == "2 1"
    assert rows["duplicates"] == "1 0"
    assert rows["models"] == f"fraud@3 ({len(live_events) + 1}) fraud@4 ({len(shadow_events)})"
    assert rows["agreement"].startswith(f"{agree / len(matched):.2%} ({agree} of {len(matched)}")
    assert rows["correlation"] == f"{statistics.correlation(xs, ys):.6g}"


def test_compare_regressor_topics(kafka_bootstrap, new_topic, capsys):
    rng = random.Random(3)
    events = list(range(120))
    live_p = {e: round(rng.uniform(10, 500), 2) for e in events}
    shadow_p = {e: round(v * rng.uniform(0.9, 1.1), 2) for e, v in live_p.items()}
    live_topic, shadow_topic = new_topic(), new_topic(partitions=3)
    produce(
        kafka_bootstrap,
        live_topic,
        _records(events, live_p, threshold=None, model="amount", version="1", scored_at=1),
    )
    produce(
        kafka_bootstrap,
        shadow_topic,
        _records(events, shadow_p, threshold=None, model="amount", version="2", scored_at=1),
    )
    diffs = [shadow_p[e] - live_p[e] for e in events]

    code, out, err = _compare(
        capsys,
        "--live", live_topic,
        "--shadow", shadow_topic,
        "--bootstrap-servers", kafka_bootstrap,
        "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["kind"] == "regressor"
    assert report["agreement"] is None
    assert report["counts"]["matched"] == len(events)
    assert report["scores"]["mean_abs_diff"] == pytest.approx(
        statistics.fmean(abs(d) for d in diffs)
    )
    assert report["scores"]["max_abs_diff"] == pytest.approx(max(abs(d) for d in diffs))
    assert report["scores"]["correlation"] == pytest.approx(
        statistics.correlation([live_p[e] for e in events], [shadow_p[e] for e in events])
    )
    assert report["plot"] is None


def test_compare_object_predictions_with_a_score_column(kafka_bootstrap, new_topic, capsys):
    events = list(range(40))
    live_p = {e: {"0": 1 - e / 40, "1": e / 40} for e in events}
    shadow_p = {e: {"0": 1 - ((e + 5) % 40) / 40, "1": ((e + 5) % 40) / 40} for e in events}
    live_topic, shadow_topic = new_topic(), new_topic()
    produce(
        kafka_bootstrap,
        live_topic,
        _records(events, live_p, threshold=None, model="m", version="1", scored_at=1),
    )
    produce(
        kafka_bootstrap,
        shadow_topic,
        _records(events, shadow_p, threshold=None, model="m", version="2", scored_at=1),
    )
    argmax = {e: max(p, key=lambda c, p=p: p[c]) for e, p in live_p.items()}
    shadow_argmax = {e: max(p, key=lambda c, p=p: p[c]) for e, p in shadow_p.items()}
    agree = sum(argmax[e] == shadow_argmax[e] for e in events)

    base = [
        "--live",
        live_topic,
        "--shadow",
        shadow_topic,
        "--bootstrap-servers",
        kafka_bootstrap,
        "--json",
    ]
    code, out, err = _compare(capsys, *base)
    assert code == 0, err
    report = json.loads(out)
    assert report["kind"] == "classifier"
    assert report["agreement"]["agree"] == agree
    assert report["scores"]["columns"] == ["1"]
    assert report["scores"]["mean_diff"] == pytest.approx(
        statistics.fmean(shadow_p[e]["1"] - live_p[e]["1"] for e in events)
    )

    code, out, err = _compare(capsys, *base, "--score-column", "0")
    assert code == 0, err
    report = json.loads(out)
    assert report["scores"]["columns"] == ["0"]
    assert report["scores"]["mean_diff"] == pytest.approx(
        statistics.fmean(shadow_p[e]["0"] - live_p[e]["0"] for e in events)
    )

    code, _, err = _compare(capsys, *base, "--score-column", "2")
    assert code == 1
    assert "--score-column '2'" in err


def test_compare_missing_or_empty_topic_exits_1(kafka_bootstrap, new_topic, capsys):
    live_topic, empty = new_topic(), new_topic()
    produce(
        kafka_bootstrap,
        live_topic,
        _records([0], {0: 0.5}, threshold=None, model="m", version="1", scored_at=1),
    )
    code, out, err = _compare(
        capsys, "--live", live_topic, "--shadow", empty, "--bootstrap-servers", kafka_bootstrap
    )
    assert code == 1
    assert out == ""
    assert f"the shadow topic {empty!r} is empty" in err

    missing = f"missing-{empty}"
    code, _, err = _compare(
        capsys, "--live", missing, "--shadow", live_topic, "--bootstrap-servers", kafka_bootstrap
    )
    assert code == 1
    assert f"the live topic {missing!r} does not exist" in err


def test_compare_plot_without_numeric_scores_is_an_error(
    kafka_bootstrap, new_topic, capsys, tmp_path
):
    live_topic, shadow_topic = new_topic(), new_topic()
    labels = {0: "cat", 1: "dog"}
    produce(
        kafka_bootstrap,
        live_topic,
        _records([0, 1], labels, threshold=None, model="m", version="1", scored_at=1),
    )
    produce(
        kafka_bootstrap,
        shadow_topic,
        _records([0, 1], {0: "cat", 1: "cat"}, threshold=None, model="m", version="2", scored_at=1),
    )
    plot = tmp_path / "none.png"
    code, out, err = _compare(
        capsys,
        "--live", live_topic,
        "--shadow", shadow_topic,
        "--bootstrap-servers", kafka_bootstrap,
        "--plot", str(plot),
    )  # fmt: skip
    assert code == 1
    assert "50.00% (1 of 2 agree; on prediction)" in out  # the report still printed
    assert "no matched pair has a numeric score" in err
    assert not plot.exists()


def test_compare_takes_kafka_from_the_config(
    kafka_bootstrap, new_topic, capsys, tmp_path, monkeypatch
):
    """With --config, kafka.bootstrap_servers comes from the file, before $KAFKA_BOOTSTRAP_SERVERS."""
    live_topic, shadow_topic = new_topic(), new_topic()
    produce(
        kafka_bootstrap,
        live_topic,
        _records([0, 1], {0: 0.25, 1: 0.5}, threshold=None, model="m", version="1", scored_at=1),
    )
    produce(
        kafka_bootstrap,
        shadow_topic,
        _records([0, 1], {0: 0.5, 1: 0.5}, threshold=None, model="m", version="2", scored_at=1),
    )
    config = tmp_path / "streamer.yaml"
    config.write_text(f"kafka:\n  bootstrap_servers: {kafka_bootstrap}\n")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # unreachable: must not be used
    monkeypatch.setenv("STREAMER_COMPARE_LIVE", live_topic)
    code, out, err = _compare(capsys, "--shadow", shadow_topic, "--config", str(config), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["topics"] == {"live": live_topic, "shadow": shadow_topic}
    assert report["scores"]["mean_abs_diff"] == pytest.approx(0.125)

    # Without topic flags, the config's kafka.output_topic and shadow.topic are compared.
    monkeypatch.delenv("STREAMER_COMPARE_LIVE")
    config.write_text(
        f"kafka: {{bootstrap_servers: '{kafka_bootstrap}', output_topic: {live_topic}}}\n"
        f"shadow: {{model_uri: 'models:/m@challenger', topic: {shadow_topic}}}\n"
    )
    code, out, err = _compare(capsys, "--config", str(config), "--json")
    assert code == 0, err
    assert json.loads(out)["topics"] == {"live": live_topic, "shadow": shadow_topic}
