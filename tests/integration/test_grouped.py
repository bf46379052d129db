"""Grouped models end to end: real registry, real broker, real SparkSession.

Each group's model is a linear regression on its own target (``1000·f + f·amount + hour``
for the group's factor ``f``), so a record scored by the wrong group's model shows.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from dataclasses import dataclass

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from streamer.errors import ModelError
from streamer.kafka import select_backend
from streamer.scoring.groups import (
    GroupedModels,
    discover,
    grouped_scores,
    peek_groups,
    resolve_groups,
    ship_groups,
)
from streamer.scoring.model import registry_client
from streamer.scoring.scorer import ScoringSettings
from tests.helpers import consume_all, produce
from tests.integration.models import log_sklearn
from tests.integration.runner import Running

pytestmark = pytest.mark.integration

FACTORS = {"US": 1, "DE": 2, "7": 3}
"""The served groups; ``7`` is a number in the events (its JSON text names the group)."""


def features(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": np.round(rng.uniform(1, 500, n), 2),
            "hour": rng.integers(0, 24, n).astype("int64"),
        }
    )


def register(tracking_uri: str, root: str, name: str, factor: int, *, alias: str | None) -> str:
    """A linear model on ``amount`` and ``hour`` registered as ``name``; its version."""
    from sklearn.linear_model import LinearRegression

    X = features(200, seed=factor)
    model = LinearRegression().fit(X, 1000 * factor + factor * X["amount"] + X["hour"])
    return log_sklearn(tracking_uri, root, name, model, X, alias=alias)


@dataclass(frozen=True)
class Registered:
    tracking_uri: str
    prefix: str
    versions: dict[str, str]
    """Served group → its registered version."""

    def template(self, field: str, ref: str = "@champion") -> str:
        return f"models:/{self.prefix}{{{field}}}-fraud{ref}"

    def name(self, group: str) -> str:
        return f"{self.prefix}{group}-fraud"


@pytest.fixture(scope="module")
def registered(tracking_uri, mlflow_root) -> Registered:
    """Three served groups; ``IT`` registered without the alias; and three names the
    template must not pick up, all with the alias: one the registry's LIKE returns (``_`` is
    a wildcard there), one differing in case, one with another suffix."""
    uid = uuid.uuid4().hex[:6]
    prefix = f"grp_{uid}-"
    root = str(mlflow_root / "artifacts")
    versions = {
        group: register(tracking_uri, root, f"{prefix}{group}-fraud", factor, alias="champion")
        for group, factor in FACTORS.items()
    }
    register(tracking_uri, root, f"{prefix}IT-fraud", 4, alias=None)
    for decoy in (f"grpX{uid}-FR-fraud", f"GRP_{uid}-ES-fraud", f"{prefix}PT-churn"):
        register(tracking_uri, root, decoy, 9, alias="champion")
    return Registered(tracking_uri, prefix, versions)


def settings(topics: dict[str, str], **kwargs) -> ScoringSettings:
    return ScoringSettings(
        output_topic=topics["out"],
        dead_letter_topic=topics["dlq"],
        max_record_bytes=65_536,
        **kwargs,
    )


def event(field: str, group: object, i: int, row: dict) -> bytes:
    return json.dumps({"event_id": i, field: group, **row}).encode()


def good_events(field: str, n: int, seed: int) -> tuple[list[tuple[bytes, bytes]], dict]:
    """``n`` events per served group, interleaved; and each key's group and features."""
    frames = {g: features(n, seed + i) for i, g in enumerate(FACTORS)}
    events, truth = [], {}
    for i in range(n):
        for group, frame in frames.items():
            row = {"amount": float(frame["amount"][i]), "hour": int(frame["hour"][i])}
            value = int(group) if group.isdigit() else group
            key = f"{group}-{i}"
            events.append((key.encode(), event(field, value, i, row)))
            truth[key] = (group, row)
    return events, truth


def expected_predictions(models: GroupedModels, truth: dict) -> dict[str, float]:
    """Each key's prediction by its group's model, computed here, outside Spark."""
    out = {}
    for group, spec in models.specs.items():
        keys = [k for k, (g, _) in truth.items() if g == group]
        frame = pd.DataFrame([truth[k][1] for k in keys]).astype({"hour": "int64"})
        predictions = mlflow.pyfunc.load_model(spec.pinned_uri).predict(frame)
        out.update(zip(keys, np.asarray(predictions, dtype=float).tolist()))
    return out


def run_grouped(spark, kafka_bootstrap, topic, models, scoring, tmp_path, **read):
    """Score ``topic`` from the start with ``grouped_scores`` into a memory sink
    (``availableNow``); the rows and the query's progress."""
    backend = select_backend(
        "python", spark, bootstrap_servers=kafka_bootstrap, client={}, score_in_source=False
    )
    source = backend.read_stream(spark, topics=[topic], start_offsets=None, **read)
    name = f"grouped_{uuid.uuid4().hex[:8]}"
    query = (
        grouped_scores(source, models, scoring)
        .writeStream.format("memory")
        .queryName(name)
        .option("checkpointLocation", str(tmp_path / name))
        .trigger(availableNow=True)
        .start()
    )
    try:
        assert query.awaitTermination(240), "the availableNow query did not finish in 240s"
    finally:
        query.stop()
    rows = [r.asDict() for r in spark.table(name).collect()]
    return rows, list(query.recentProgress)


def test_resolve_groups_finds_the_template_groups_and_pins_them(registered, tmp_path, caplog):
    template = registered.template("country")
    with caplog.at_level(logging.WARNING, logger="streamer.scoring.groups"):
        models = resolve_groups(
            template, "country", tracking_uri=registered.tracking_uri, work_dir=str(tmp_path)
        )

    assert sorted(models.specs) == sorted(FACTORS)
    assert models.versions == {g: registered.versions[g] for g in sorted(FACTORS)}
    for group, spec in models.specs.items():
        assert spec.name == registered.name(group)
        assert spec.uri == f"models:/{registered.name(group)}@champion"
        assert spec.pinned_uri == f"models:/{registered.name(group)}/{registered.versions[group]}"
        assert [f.name for f in spec.input_schema.fields] == ["amount", "hour"]
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 1 and 'group="IT"' in skipped[0], skipped

    # The poller's cheap look at the registry says what a resolve pins; the key moves with it.
    assert peek_groups(template, "country", registered.tracking_uri, None) == models.key()
    client = registry_client(registered.tracking_uri, None)
    client.set_registered_model_alias(registered.name("IT"), "champion", "1")
    try:
        assert peek_groups(template, "country", registered.tracking_uri, None) != models.key()
    finally:
        client.delete_registered_model_alias(registered.name("IT"), "champion")
    assert peek_groups(template, "country", registered.tracking_uri, None) == models.key()

    # Paging: one registered model per page finds the same groups.
    assert discover(client, template, "country", page_size=1) == discover(
        client, template, "country"
    )
    # The version part applies to every group: /latest also finds IT, /1 too.
    latest = discover(client, registered.template("country", "/latest"), "country")
    assert sorted(latest) == sorted([*FACTORS, "IT"])
    assert latest["IT"] == f"models:/{registered.name('IT')}/1"


def test_resolve_groups_refuses_nothing_to_serve_and_invalid_models(
    registered, tracking_uri, mlflow_root, tmp_path
):
    with pytest.raises(ModelError, match="matched no servable registered model") as nothing:
        resolve_groups(
            f"models:/none-{uuid.uuid4().hex[:6]}-{{country}}@champion",
            "country",
            tracking_uri=tracking_uri,
            work_dir=str(tmp_path),
        )
    assert "name LIKE 'none-" in str(nothing.value)

    # A group whose model cannot be served is fatal, and named.
    prefix = f"bad{uuid.uuid4().hex[:6]}-"
    register(tracking_uri, str(mlflow_root / "artifacts"), f"{prefix}OK", 1, alias="champion")
    import mlflow.sklearn
    from sklearn.linear_model import LinearRegression

    X = features(20, seed=0)
    with mlflow.start_run():
        mlflow.sklearn.log_model(
            LinearRegression().fit(X, X["amount"]),
            name="model",
            serialization_format="cloudpickle",
            registered_model_name=f"{prefix}KO",
        )
    registry_client(tracking_uri, None).set_registered_model_alias(f"{prefix}KO", "champion", "1")
    with pytest.raises(ModelError, match="no input signature") as invalid:
        resolve_groups(
            f"models:/{prefix}{{country}}@champion",
            "country",
            tracking_uri=tracking_uri,
            work_dir=str(tmp_path),
        )
    assert "country = 'KO'" in str(invalid.value)

    with pytest.raises(ModelError, match="not a grouped-model template"):
        resolve_groups("models:/fraud@champion", "country", tracking_uri=tracking_uri)


def test_each_record_is_scored_by_its_group_model(
    spark, kafka_bootstrap, new_topic, registered, tmp_path
):
    """Field names with dots and spaces; a number as the group; unknown, missing and null
    groups; records the parser rejects keep the parser's reason."""
    field = "shop.country code"
    topics = {"in": new_topic(partitions=2), "out": "out", "dlq": "dlq"}
    models = resolve_groups(
        registered.template(field),
        field,
        tracking_uri=registered.tracking_uri,
        work_dir=str(tmp_path),
    )
    ship_groups(spark, models)
    events, truth = good_events(field, 40, seed=10)
    row = {"amount": 12.5, "hour": 3}
    bad = {
        "unknown": (event(field, "ZZ", 0, row), "no_model_for_group"),
        "unaliased": (event(field, "IT", 0, row), "no_model_for_group"),
        "missing": (json.dumps(row).encode(), "no_model_for_group"),
        "null": (event(field, None, 0, row), "no_model_for_group"),
        "broken": (b'{"shop.country code": "US", "amount": 1,', "invalid_json"),
        "array": (b'[{"shop.country code": "US"}]', "not_an_object"),
        "unknown-nan": (
            event(field, "XX", 0, row).replace(b'"hour": 3', b'"hour": NaN'),
            "non_finite_number",
        ),
        "empty": (b"", "empty_value"),
        "wrong": (event(field, "DE", 0, {**row, "amount": "lots"}), "wrong_type"),
    }
    produce(
        kafka_bootstrap,
        topics["in"],
        events + [(k.encode(), v) for k, (v, _) in bad.items()],
    )

    rows, _ = run_grouped(spark, kafka_bootstrap, topics["in"], models, settings(topics), tmp_path)

    keys = Counter(r["key"].decode() for r in rows)
    assert keys == Counter([*truth, *bad]), "every record exactly once"
    outputs = {r["key"].decode(): json.loads(r["value"]) for r in rows if r["reason"] is None}
    assert sorted(outputs) == sorted(truth)
    assert all(r["topic"] == "out" for r in rows if r["reason"] is None)
    expected = expected_predictions(models, truth)
    for key, body in outputs.items():
        group = truth[key][0]
        assert body["prediction"] == pytest.approx(expected[key], rel=1e-12), key
        assert body["model"] == {"name": registered.name(group), "version": models.versions[group]}
        assert body["source"]["topic"] == topics["in"]
    # The groups' models really differ: on the same rows no two agree.
    probe = features(5, seed=0)
    by_group = [
        mlflow.pyfunc.load_model(s.local_path).predict(probe) for s in models.specs.values()
    ]
    assert all(not np.allclose(a, b) for i, a in enumerate(by_group) for b in by_group[i + 1 :])

    letters = {r["key"].decode(): (r, json.loads(r["value"])) for r in rows if r["reason"]}
    assert sorted(letters) == sorted(bad)
    for key, (_, reason) in bad.items():
        row_, letter = letters[key]
        assert row_["topic"] == "dlq" and row_["reason"] == reason == letter["reason"], key
        assert letter["source"]["topic"] == topics["in"]
        assert isinstance(letter["source"]["offset"], int) and letter["error"]
    assert "'ZZ'" in letters["unknown"][1]["error"]
    assert f"no field {field!r}" in letters["missing"][1]["error"]
    assert "is null" in letters["null"][1]["error"]


def test_a_cache_smaller_than_the_groups_evicts_and_stays_correct(
    spark, kafka_bootstrap, new_topic, registered, tmp_path
):
    """``cache_size=1`` with three groups in every task: every group's model is loaded
    anew in every batch (the bound bounds), and every score is still its group's."""
    field = "country"
    topic = new_topic()
    # Fresh ship names: no worker has these models cached from another test.
    models = resolve_groups(
        registered.template(field),
        field,
        tracking_uri=registered.tracking_uri,
        work_dir=str(tmp_path),
    )
    ship_groups(spark, models)
    events, truth = good_events(field, 30, seed=20)  # 90 events, the groups interleaved
    produce(kafka_bootstrap, topic, events)

    # One shuffle partition: every task holds all three groups. The query reads the
    # setting when it starts.
    before = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", "1")
    try:
        rows, progress = run_grouped(
            spark,
            kafka_bootstrap,
            topic,
            models,
            settings({"out": "out", "dlq": "dlq"}, cache_size=1),
            tmp_path,
            max_offsets_per_trigger=9,
        )
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", before)

    assert not [r for r in rows if r["reason"]]
    outputs = {r["key"].decode(): json.loads(r["value"]) for r in rows}
    assert sorted(outputs) == sorted(truth)
    expected = expected_predictions(models, truth)
    for key, body in outputs.items():
        assert body["prediction"] == pytest.approx(expected[key], rel=1e-12), key
        assert body["model"]["name"] == registered.name(truth[key][0])

    batches = [p for p in progress if p["numInputRows"] > 0]
    assert len(batches) >= 10, [p["numInputRows"] for p in progress]
    loads = Counter(
        (r["worker_pid"], json.loads(r["value"])["model"]["name"]) for r in rows if r["model_loads"]
    )
    # A worker loads a model it loaded before only after evicting it. Every batch is one
    # task holding three groups, so a worker that ran two batches loaded some model twice;
    # ten batches on a pool of (at most) a few Python workers make that certain.
    assert sum(loads.values()) > len(loads), loads
    assert sum(loads.values()) > 3


def test_service_scores_each_group_with_its_model(
    spark, kafka_bootstrap, registered, kafka_backend, service_topics, service_config
):
    topics = service_topics(partitions=2)
    events, truth = good_events("country", 25, seed=30)
    unknown = [(b"zz-0", event("country", "ZZ", 0, {"amount": 1.0, "hour": 1}))]
    produce(kafka_bootstrap, topics["in"], events + unknown)
    config = service_config(
        topics,
        model={
            "uri": registered.template("country"),
            "group_by": "country",
            "tracking_uri": registered.tracking_uri,
            "cache_size": 2,
        },
        spark={"trigger": "1 second"},
        kafka={"backend": kafka_backend},
    )
    running = Running(config, spark)
    try:
        outputs = consume_all(kafka_bootstrap, topics["out"], len(events), timeout=240)
        dead = consume_all(kafka_bootstrap, topics["dlq"], len(unknown), timeout=60)
    finally:
        result = running.stop()

    assert result.outcome == "stopped", result.error
    models = running.service.model
    assert isinstance(models, GroupedModels)
    bodies = [json.loads(r.value) for r in outputs]
    assert Counter(b["key"] for b in bodies) == Counter(list(truth))
    expected = expected_predictions(models, truth)
    for body in bodies:
        group = truth[body["key"]][0]
        assert body["prediction"] == pytest.approx(expected[body["key"]], rel=1e-12)
        assert body["model"] == {"name": registered.name(group), "version": models.versions[group]}
    (letter,) = [json.loads(r.value) for r in dead]
    assert letter["reason"] == "no_model_for_group" and letter["key"] == "zz-0"
    assert result.totals.outputs == len(events)
    assert result.totals.dead_letters_total == 1
    assert result.totals.dead_letters.get("no_model_for_group") == 1
