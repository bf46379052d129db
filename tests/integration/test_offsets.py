"""Listener-owned offsets on a real broker and Spark: exact resume, stores, start-up rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

from streamer.errors import OffsetsError
from streamer.offsets.stores import FileStore, KafkaGroupStore, S3Store
from streamer.service import Service
from tests.helpers import add_partitions, assert_eventually, consume_all, produce
from tests.integration.models import event_records
from tests.integration.runner import Running, source_positions, write_config

pytestmark = pytest.mark.integration


def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=15)}
    finally:
        consumer.close()


def test_graceful_stop_mid_stream_then_restart_is_exact(
    spark, kafka_bootstrap, kafka_backend, service_config, service_topics
):
    topics = service_topics(partitions=3)
    events = [*event_records(3000, seed=21), (b"bad-0", b"{oops"), (b"bad-1", b"")]
    produce(kafka_bootstrap, topics["in"], events)
    group = f"streamer-{uuid.uuid4().hex[:8]}"
    config = service_config(
        topics,
        spark={"trigger": "0 seconds", "max_offsets_per_trigger": 250},
        offsets={"group_id": group},
        kafka={"backend": kafka_backend},
    )

    first = Running(config, spark)
    assert_eventually(lambda: _at_least(first.service.stats.totals().input_rows, 500), timeout=240)
    stopped = first.stop()
    assert stopped.outcome == "stopped"
    stored = FileStore(config.offsets.path).load()
    assert stored is not None
    position = stored.offsets[topics["in"]]
    assert position == stopped.totals.offsets[topics["in"]], "persisted != completed batches"
    assert sum(position.values()) == stopped.totals.input_rows
    assert sum(position.values()) < len(events), "stopped after the end; nothing tested"
    assert _committed(kafka_bootstrap, group, topics["in"], 3) == position

    second = Running(config, spark)
    outputs = consume_all(kafka_bootstrap, topics["out"], 3000, timeout=300)
    dead = consume_all(kafka_bootstrap, topics["dlq"], 2, timeout=60)
    resumed = second.stop()
    assert resumed.outcome == "stopped"

    seen = source_positions(outputs + dead)
    assert len(seen) == len(events), "an event has no output or dead letter"
    duplicated = {pos: n for pos, n in seen.items() if n > 1}
    assert not duplicated, f"duplicates after a graceful stop: {list(duplicated)[:5]}"
    assert resumed.totals.input_rows == len(events) - stopped.totals.input_rows
    final = FileStore(config.offsets.path).load().offsets[topics["in"]]
    assert sum(final.values()) == len(events)
    assert _committed(kafka_bootstrap, group, topics["in"], 3) == final


def _at_least(value: int, minimum: int) -> None:
    assert value >= minimum, f"{value} < {minimum}"


def test_unreadable_store_refuses_to_start_until_reset(
    spark, kafka_bootstrap, service_topics, service_config
):
    topics = service_topics(partitions=2)
    produce(kafka_bootstrap, topics["in"], event_records(100, seed=3, prefix="old"))
    config = service_config(topics)
    os.makedirs(config.offsets.path)
    with open(os.path.join(config.offsets.path, "offsets-000000000000.json"), "w") as f:
        f.write('{"format": 1, "offs')

    refused = Service(config, spark=spark)
    with pytest.raises(OffsetsError, match="none is readable"):
        refused.start()
    refused.stop()

    running = Running(config, spark, reset_offsets="latest")
    new = event_records(40, seed=4, prefix="new")
    produce(kafka_bootstrap, topics["in"], new)
    outputs = consume_all(kafka_bootstrap, topics["out"], len(new), timeout=240)
    running.stop()
    keys = sorted(json.loads(r.value)["key"] for r in outputs)
    assert keys == sorted(k.decode() for k, _ in new), "reset to latest replayed old events"
    assert sum(FileStore(config.offsets.path).load().offsets[topics["in"]].values()) == 140


def test_partition_added_while_running_is_picked_up(
    spark, kafka_bootstrap, kafka_backend, kafka_is_tansu, service_topics, service_config
):
    if kafka_is_tansu:
        pytest.skip("tansu 0.6 has no CreatePartitions; Apache Kafka (the default) has")
    bootstrap = kafka_bootstrap
    topics = service_topics(partitions=2)
    produce(bootstrap, topics["in"], event_records(50, seed=5, prefix="before"))
    config = service_config(
        topics,
        bootstrap=bootstrap,
        spark={"trigger": "500 milliseconds"},
        kafka={"backend": kafka_backend},
    )
    running = Running(config, spark)
    try:
        consume_all(bootstrap, topics["out"], 50, timeout=240)
        add_partitions(bootstrap, topics["in"], 3)
        produce(bootstrap, topics["in"], event_records(30, seed=6, prefix="after"), partition=2)
        outputs = consume_all(bootstrap, topics["out"], 80, timeout=180)
    finally:
        result = running.stop()
    from_new = [r for r in outputs if json.loads(r.value)["source"]["partition"] == 2]
    assert len(from_new) == 30
    assert result.totals.offsets[topics["in"]][2] == 30
    stored = FileStore(config.offsets.path).load().offsets[topics["in"]]
    assert stored[2] == 30 and sum(stored.values()) == 80


def test_kafka_group_store_is_what_a_plain_consumer_sees(kafka_bootstrap, new_topic):
    topic = new_topic(partitions=2)
    group = f"streamer-{uuid.uuid4().hex[:8]}"
    store = KafkaGroupStore(group, kafka_bootstrap, {}, [topic])
    try:
        assert store.load() is None
        store.save({topic: {0: 0, 1: 0}})
        store.save({topic: {0: 17, 1: 4}})
        assert _committed(kafka_bootstrap, group, topic, 2) == {0: 17, 1: 4}
        assert store.load().offsets == {topic: {0: 17, 1: 4}}
    finally:
        store.close()


def test_s3_store_against_the_local_server(s3_server):
    bucket = f"offsets-{uuid.uuid4().hex[:8]}"
    client = s3_server.client()
    client.create_bucket(Bucket=bucket)
    url = f"s3://{bucket}/apps/fraud"
    store = S3Store(url, keep=2, client=s3_server.client_kwargs())
    assert store.load() is None
    for i in range(4):
        store.save({"t": {0: i * 10, 1: i}}, batch_id=i, writer="test")
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == [
        "apps/fraud/offsets-000000000002.json",
        "apps/fraud/offsets-000000000003.json",
    ]
    fresh = S3Store(url, client=s3_server.client_kwargs())
    loaded = fresh.load()
    assert loaded.offsets == {"t": {0: 30, 1: 3}} and loaded.batch_id == 3
    client.put_object(Bucket=bucket, Key=keys[-1], Body=b"torn")
    assert S3Store(url, client=s3_server.client_kwargs()).load().offsets == {"t": {0: 20, 1: 2}}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "streamer.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_offsets_cli_show_set_reset(kafka_bootstrap, fraud_classifier, tmp_path, service_topics):
    topics = service_topics(partitions=2)
    produce(kafka_bootstrap, topics["in"], [(b"k", b"{}")] * 10, partition=0)
    produce(kafka_bootstrap, topics["in"], [(b"k", b"{}")] * 4, partition=1)
    path = write_config(
        tmp_path / "c.yaml", bootstrap=kafka_bootstrap, topics=topics, model=fraud_classifier
    )

    shown = _cli("offsets", "--config", path, "show")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["offsets"] == {} and document["lag"] == {topics["in"]: {"0": 10, "1": 4}}

    changed = _cli("offsets", "--config", path, "set", json.dumps({topics["in"]: {"0": 6}}))
    assert changed.returncode == 0, changed.stderr
    document = json.loads(_cli("offsets", "--config", path, "show").stdout)
    assert document["offsets"] == {topics["in"]: {"0": 6}}
    assert document["lag"] == {topics["in"]: {"0": 4, "1": 4}}
    assert document["writer"] == "streamer offsets set"

    reset = _cli("offsets", "--config", path, "reset", "--to", "latest")
    assert reset.returncode == 0, reset.stderr
    document = json.loads(_cli("offsets", "--config", path, "show").stdout)
    assert document["offsets"] == {topics["in"]: {"0": 10, "1": 4}}
    assert document["lag"] == {topics["in"]: {"0": 0, "1": 0}}

    bad = _cli("offsets", "--config", path, "set", '{"x": 1}')
    assert bad.returncode != 0 and "not JSON of the form" in bad.stderr
