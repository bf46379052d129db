import dataclasses
import pickle
from pathlib import Path

import pytest

from streamer.config import Config, load_config, parse_trigger_seconds
from streamer.errors import ConfigError
from streamer.kafka import JvmKafkaBackend

ROOT = Path(__file__).resolve().parents[2]


def _yaml(tmp_path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


def test_defaults_match_the_contract():
    config = load_config(None, env={})
    assert config.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert (
        config.kafka.input_topic,
        config.kafka.output_topic,
        config.kafka.dead_letter_topic,
    ) == (
        "transactions",
        "predictions",
        "transactions.dlq",
    )
    assert config.kafka.backend == "auto" and dict(config.kafka.client) == {}
    assert config.model.uri == "models:/fraud-detector@champion"
    assert config.model.tracking_uri is None and config.model.threshold is None
    assert config.spark.master == "local[*]" and config.spark.trigger == "0 seconds"
    assert config.spark.max_offsets_per_trigger is None and config.spark.arrow_batch_size == 10_000


def test_offsets_section_defaults_and_env_overrides():
    assert load_config(None, env={}).offsets == dataclasses.replace(
        Config().offsets, store="file", path="./state/offsets", group_id=None
    )
    config = load_config(
        None,
        env={
            "STREAMER_OFFSETS__STORE": "s3",
            "STREAMER_OFFSETS__PATH": "s3://bucket/streamer/offsets",
            "STREAMER_OFFSETS__GROUP_ID": "streamer-fraud",
            "STREAMER_OFFSETS__S3_CLIENT": '{"endpoint_url": "http://127.0.0.1:9000"}',
        },
    )
    assert config.offsets.store == "s3" and config.offsets.group_id == "streamer-fraud"
    assert dict(config.offsets.s3_client) == {"endpoint_url": "http://127.0.0.1:9000"}


def test_shipped_local_yaml_loads_and_equals_defaults_but_binds_loopback():
    local = load_config(ROOT / "conf" / "local.yaml", env={})
    assert local.metrics.host == "127.0.0.1"
    assert local == dataclasses.replace(
        Config(), metrics=dataclasses.replace(Config().metrics, host="127.0.0.1")
    )


def test_env_overrides_every_kind_of_value(tmp_path):
    path = _yaml(
        tmp_path,
        "kafka:\n  client: {security.protocol: SASL_SSL, sasl.mechanism: PLAIN}\n"
        "spark:\n  conf: {a: b}\n",
    )
    jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        'username="u" password="hunter2";'
    )
    config = load_config(
        path,
        env={
            "STREAMER_KAFKA__BOOTSTRAP_SERVERS": "broker:9093",
            "STREAMER_SPARK__MAX_OFFSETS_PER_TRIGGER": "5000",
            "STREAMER_MODEL__THRESHOLD": "0.75",
            "STREAMER_MODEL__SCORE_COLUMN": "1",
            "STREAMER_SPARK__MASTER": "null",
            "STREAMER_KAFKA__CLIENT__SASL_JAAS_CONFIG": jaas,
            "STREAMER_SPARK__CONF": '{"spark.driver.memory": "4g"}',
            "OTHER": "ignored",
        },
    )
    assert config.kafka.bootstrap_servers == "broker:9093"
    assert config.spark.max_offsets_per_trigger == 5000
    assert config.model.threshold == 0.75 and config.model.score_column == "1"
    assert config.spark.master is None
    assert dict(config.kafka.client) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.jaas.config": jaas,
    }
    assert dict(config.spark.conf) == {"a": "b", "spark.driver.memory": "4g"}


def test_env_wins_over_file(tmp_path):
    path = _yaml(tmp_path, "kafka:\n  input_topic: from-file\n")
    config = load_config(path, env={"STREAMER_KAFKA__INPUT_TOPIC": "from-env"})
    assert config.kafka.input_topic == "from-env"


@pytest.mark.parametrize(
    "text,env,message",
    [
        (
            "kafka:\n  bootstrap_server: x\n",
            {},
            "config error: unknown key kafka.bootstrap_server in {path}; did you mean kafka.bootstrap_servers?",
        ),
        (
            "kafkaa:\n  backend: jvm\n",
            {},
            "config error: unknown section kafkaa in {path}; did you mean kafka?",
        ),
        (
            "kafka:\n  backend: jvmm\n",
            {},
            "config error: kafka.backend = 'jvmm' (from {path}): expected one of auto, jvm, python",
        ),
        (
            "",
            {"STREAMER_SPARK__ARROW_BATCH_SIZE": "lots"},
            "config error: spark.arrow_batch_size = 'lots' (from environment variable "
            "STREAMER_SPARK__ARROW_BATCH_SIZE): expected a whole number",
        ),
        (
            "spark:\n  arrow_batch_size: -5\n",
            {},
            "config error: spark.arrow_batch_size = -5 (from {path}): expected a number greater than 0",
        ),
        (
            "spark:\n  trigger: soon\n",
            {},
            "config error: spark.trigger = 'soon' (from {path}): expected '<number> <unit>' with unit "
            "milliseconds, seconds or minutes, e.g. '0 seconds' or '500 milliseconds'",
        ),
        (
            "kafka:\n  output_topic: transactions\n",
            {},
            "config error: kafka.output_topic = 'transactions' is the same as kafka.input_topic; "
            "the service would read its own output. Use another topic",
        ),
        (
            "kafka:\n  client: [a, b]\n",
            {},
            "config error: kafka.client = ['a', 'b'] (from {path}): expected a mapping such as "
            '{"key": "value"}',
        ),
        (
            "model:\n  threshold: high\n",
            {},
            "config error: model.threshold = 'high' (from {path}): expected a number",
        ),
        (
            "model:\n  threshold: true\n",
            {},
            "config error: model.threshold = True (from {path}): expected a number",
        ),
        (
            "",
            {"STREAMER_KAFKA__BOOTSTRAP_SERVER": "x"},
            "config error: environment variable STREAMER_KAFKA__BOOTSTRAP_SERVER matches no config "
            "key; did you mean STREAMER_KAFKA__BOOTSTRAP_SERVERS?",
        ),
        (
            "kafka:\n  input_topic: ''\n",
            {},
            "config error: kafka.input_topic = '' (from {path}): must not be empty",
        ),
        (
            "model:\n  score_column: '1'\n",
            {},
            "config error: model.score_column is set but model.threshold is not; set "
            "model.threshold or remove model.score_column",
        ),
        (
            "offsets:\n  store: kafka\n",
            {},
            "config error: offsets.store = 'kafka' (from {path}): expected one of file, s3, "
            "kafka-group",
        ),
        (
            "offsets:\n  store: kafka-group\n",
            {},
            "config error: offsets.store = 'kafka-group' needs offsets.group_id; set it to the "
            "consumer group that should hold the service's position",
        ),
        (
            "",
            {"STREAMER_OFFSETS__STORE": "s3"},
            "config error: offsets.path = './state/offsets' with offsets.store = 's3': expected "
            "s3://bucket/prefix",
        ),
        (
            "offsets:\n  keep: 0\n",
            {},
            "config error: offsets.keep = 0 (from {path}): expected a number greater than 0",
        ),
        (
            "",
            {"STREAMER_OFFSETS__ON_OUT_OF_RANGE": "latest"},
            "config error: offsets.on_out_of_range = 'latest' (from environment variable "
            "STREAMER_OFFSETS__ON_OUT_OF_RANGE): expected one of fail, skip",
        ),
    ],
)
def test_bad_config_fails_with_one_clear_line(tmp_path, text, env, message):
    path = _yaml(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env)
    assert str(info.value) == message.replace("{path}", path)
    assert "\n" not in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot read .*nope\.yaml"):
        load_config(tmp_path / "nope.yaml", env={})


def test_config_is_frozen_and_picklable():
    config = load_config(None, env={"STREAMER_KAFKA__CLIENT__SSL_KEYSTORE_PASSWORD": "s3cret"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.kafka.input_topic = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.kafka.client["x"] = "y"  # type: ignore[index]
    assert pickle.loads(pickle.dumps(config)) == config


def test_secrets_never_show(tmp_path):
    path = _yaml(
        tmp_path,
        "kafka:\n  client:\n    sasl.mechanism: PLAIN\n    ssl.keystore.password: s3cret\n"
        "    sasl.jaas.config: 'org.apache.kafka.common.security.plain.PlainLoginModule required"
        ' username="alice" password="s3cret";\'\n    ssl.key.password: s3cret\n',
    )
    config = load_config(path, env={})
    assert "s3cret" not in repr(config)
    assert "s3cret" not in str(config.redacted())
    assert config.redacted()["kafka"]["client"]["sasl.mechanism"] == "PLAIN"
    assert config.kafka.client["ssl.key.password"] == "s3cret"


@pytest.mark.parametrize(
    "text,seconds",
    [("0 seconds", 0.0), ("500 milliseconds", 0.5), ("2 minutes", 120.0), ("1 second", 1.0)],
)
def test_trigger_parsing(text, seconds):
    assert parse_trigger_seconds(text) == seconds


def test_handoff_color_is_blue_or_green_and_overridable():
    assert load_config(None, env={}).handoff.color is None
    config = load_config(None, env={"STREAMER_HANDOFF__COLOR": "green"})
    assert config.handoff.color == "green"
    with pytest.raises(ConfigError, match=r"handoff\.color = 'red'.*blue, green"):
        load_config(None, env={"STREAMER_HANDOFF__COLOR": "red"})


def test_handoff_needs_a_lease_store_and_a_sane_timeout(tmp_path):
    with pytest.raises(ConfigError, match=r"handoff\.color = 'blue'.*use file or s3"):
        load_config(
            _yaml(
                tmp_path,
                "offsets: {store: kafka-group, group_id: g}\nhandoff: {color: blue}\n",
            ),
            env={},
        )
    with pytest.raises(ConfigError, match=r"lease_timeout_seconds = 2\.0 is under 3 x"):
        load_config(
            _yaml(tmp_path, "handoff: {lease_timeout_seconds: 2, heartbeat_seconds: 1}\n"), env={}
        )


def test_model_lifecycle_keys_default_off_and_env_overridable():
    config = load_config(None, env={})
    assert config.model.follow_alias is False and config.model.env_manager == "local"
    assert config.model.group_by is None and config.shadow.model_uri is None
    env = {
        "STREAMER_MODEL__FOLLOW_ALIAS": "true",
        "STREAMER_MODEL__POLL_SECONDS": "5",
        "STREAMER_MODEL__ENV_MANAGER": "uv",
        "STREAMER_SHADOW__MODEL_URI": "models:/fraud-detector@challenger",
    }
    config = load_config(None, env=env)
    assert config.model.follow_alias is True and config.model.poll_seconds == 5.0
    assert config.model.env_manager == "uv"
    assert config.shadow.topic == "predictions.shadow", "the shadow topic defaults from output"


@pytest.mark.parametrize(
    "text, message",
    [
        ("model: {env_manager: conda}", "model.env_manager = 'conda'"),
        ("model: {follow_alias: true, uri: 'models:/fraud/3'}", "names no alias"),
        ("model: {uri: 'models:/fraud-{country}@champion'}", "model.group_by is not set"),
        ("model: {group_by: country}", "a registry template naming the field once"),
        (
            "model: {group_by: country, uri: 'models:/fraud-{merchant}@champion'}",
            "e.g. models:/fraud-{country}@champion",
        ),
        ("model: {cache_size: 0}", "model.cache_size = 0"),
        ("shadow: {model_uri: 'models:/x@c', topic: predictions}", "same as kafka.output_topic"),
        (
            "model: {group_by: country, uri: 'models:/f-{country}@c'}\nshadow: {model_uri: 'models:/x@c'}",
            "shadow scoring of grouped models is not supported",
        ),
    ],
)
def test_bad_model_lifecycle_config_names_the_key_and_the_fix(tmp_path, text, message):
    with pytest.raises(ConfigError, match="config error") as caught:
        load_config(_yaml(tmp_path, text), env={})
    assert message in str(caught.value)


def test_source_options_reach_spark_validated(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "kafka:\n  backend: jvm\n  source_options:\n    includeHeaders: true\n"
        "    minPartitions: 8\n    failOnDataLoss: false\n"
    )
    options = load_config(path, env={}).kafka.source_options
    assert dict(options) == {"includeHeaders": "True", "minPartitions": "8", "failOnDataLoss": "False"}
    backend = JvmKafkaBackend("b:9092", {}, options, on_out_of_range="fail")
    assert backend._extra_source_options("earliest", None) == {
        "failOnDataLoss": "false",
        "includeHeaders": "true",
        "minPartitions": "8",
    }
    assert backend.columns[-1] == "headers"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("maxOffsetsPerTrigger: 5", "set spark.max_offsets_per_trigger"),
        ("startingOffsets: earliest", "set the offset store"),
        ("kafka.security.protocol: SSL", "client settings go in kafka.client"),
        ("failOnDataLos: true", "did you mean failOnDataLoss?"),
        ("minPartitions: -1", "expected an integer > 0"),
        ("includeHeaders: maybe", "expected true or false"),
    ],
)
def test_bad_source_options_name_the_key_and_the_fix(tmp_path, options, message):
    path = tmp_path / "c.yaml"
    path.write_text(f"kafka:\n  backend: jvm\n  source_options:\n    {options}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, env={})
    assert "kafka.source_options." + options.split(":")[0] in str(error.value)
    assert message in str(error.value)


def test_source_options_with_the_python_backend_are_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("kafka:\n  backend: python\n  source_options:\n    includeHeaders: true\n")
    with pytest.raises(ConfigError, match="takes none"):
        load_config(path, env={})
