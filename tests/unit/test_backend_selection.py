import json

import pytest

from streamer.errors import KafkaIOError
from streamer.kafka import (
    JvmKafkaBackend,
    PythonKafkaBackend,
    choose_backend,
    starting_offsets_json,
)
from streamer.kafka.admin import client_config, is_tansu, loggable
from streamer.kafka.pysource import spread_limit


def test_auto_prefers_jvm_when_the_connector_loads():
    assert choose_backend("auto", connector_available=True) == "jvm"
    assert choose_backend("auto", connector_available=False) == "python"


def test_explicit_choices_are_kept():
    assert choose_backend("python", connector_available=True) == "python"
    assert choose_backend("jvm", connector_available=True) == "jvm"


def test_jvm_without_connector_says_what_to_do():
    with pytest.raises(KafkaIOError, match=r"spark-sql-kafka-0-10_2\.13.*kafka\.backend: python"):
        choose_backend("jvm", connector_available=False)


def test_unknown_backend():
    with pytest.raises(KafkaIOError, match="expected one of auto, jvm, python"):
        choose_backend("flink", connector_available=True)


def test_starting_offsets_cover_every_partition():
    text = starting_offsets_json({"t": {0: 5}}, {"t": [0, 1, 2], "u": [0]}, "earliest")
    assert json.loads(text) == {"t": {"0": 5, "1": -2, "2": -2}, "u": {"0": -2}}
    text = starting_offsets_json({}, {"t": [0]}, "latest")
    assert json.loads(text) == {"t": {"0": -1}}


def test_kafka_options_pass_java_client_settings_with_prefix():
    jaas = 'org.apache.kafka.common.security.scram.ScramLoginModule required username="u" password="p";'
    backend = JvmKafkaBackend(
        "b:9092",
        {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.jaas.config": jaas},
    )
    options = backend._kafka_options()
    assert options == {
        "kafka.security.protocol": "SASL_SSL",
        "kafka.sasl.mechanism": "SCRAM-SHA-512",
        "kafka.sasl.jaas.config": jaas,
        "kafka.bootstrap.servers": "b:9092",
    }
    assert loggable(options)["kafka.sasl.jaas.config"] == "***"
    assert PythonKafkaBackend("b:9092", {}).name == "python"


def test_required_client_settings_win_over_user_settings():
    conf = client_config(
        "b:1",
        {"enable.auto.commit": True, "fetch.max.wait.ms": 1},
        {"fetch.wait.max.ms": 0, "y": 2},
        enable_auto_commit=False,
    )
    assert conf == {
        "bootstrap.servers": "b:1",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 1,
        "y": 2,
    }


@pytest.mark.parametrize(
    "available,limit",
    [
        ({("t", 0): 100, ("t", 1): 100}, 50),
        ({("t", 0): 1000, ("t", 1): 1}, 10),
        ({("t", 0): 3, ("t", 1): 0}, 10),
        ({("t", 0): 7, ("t", 1): 9, ("t", 2): 11}, 5),
    ],
)
def test_spread_limit_respects_limit_and_backlog(available, limit):
    share = spread_limit(available, limit)
    assert sum(share.values()) == min(limit, sum(available.values()))
    assert all(0 <= share[tp] <= available[tp] for tp in available)
    if limit >= len(available):
        assert all(share[tp] > 0 for tp in available if available[tp] > 0)


def test_tansu_detection():
    assert is_tansu("tansu_cluster") and not is_tansu("MkU3OEVBNTcwNTJENDM2Qk")
