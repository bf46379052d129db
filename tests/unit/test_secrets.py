"""One secret policy: what is secret, how it is masked, and that no config error shows it."""

import re

import pytest

from streamer.config import load_config
from streamer.errors import ConfigError
from streamer.kafka.admin import loggable
from streamer.secrets import (
    SPARK_DEFAULT_REDACTION_REGEX,
    SPARK_REDACTION_REGEX,
    is_secret,
    mask_assignments,
    mask_mapping,
    mask_text,
    mask_url,
    mask_value,
)

SECRET = "hunter2"

SECRET_KEYS = [
    "password",
    "sasl.password",
    "ssl.key.password",
    "ssl.keystore.password",
    "ssl.truststore.password",
    "sasl.jaas.config",
    "sasl.oauthbearer.config",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.client.credentials.client.secret",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.assertion.private.key.pem",
    "ssl.keystore.key",
    "ssl.key.pem",
    "ssl_key",
    "kafka.sasl.jaas.config",
    "spark.kafka.clusters.a.ssl.truststore.password",
    "aws_secret_access_key",
    "AWS_SECRET_ACCESS_KEY",
    "aws_session_token",
    "fs.s3a.secret.key",
    "fs.s3a.access.key",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "google.credentials.json",
    "credentials",
    "basic.auth.user.info",
    "clientSecret",
    "privateKey",
    "api_key",
    "secret.file",  # a strong marker wins over a path-like ending
]
NOT_SECRET_KEYS = [
    "sasl.username",
    "sasl.mechanism",
    "security.protocol",
    "sasl.oauthbearer.token.endpoint.url",
    "ssl.keystore.certificate.chain",
    "ssl.truststore.certificates",
    "ssl.truststore.location",
    "ssl.keystore.location",
    "ssl.key.location",
    "ssl.keystore.type",
    "sasl.oauthbearer.assertion.private.key.file",
    "sasl.oauthbearer.assertion.algorithm",
    "key.serializer",
    "partitioner.ignore.keys",
    "sasl.kerberos.keytab",
    "client.id",
    "bootstrap.servers",
    "tracking_uri",
]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_keys(key):
    assert is_secret(key)


@pytest.mark.parametrize("key", NOT_SECRET_KEYS)
def test_keys_that_are_not_secret(key):
    assert not is_secret(key)


@pytest.mark.parametrize("key", [*SECRET_KEYS, "spark.authenticate.secret", "x.token.y"])
def test_spark_redaction_regex_covers_every_secret_key(key):
    assert re.search(SPARK_REDACTION_REGEX, key)


@pytest.mark.parametrize(
    "key", ["my.secret", "Password", "auth.token", "s3.accesskey", "access.key"]
)
def test_spark_redaction_regex_keeps_sparks_default(key):
    assert re.search(SPARK_DEFAULT_REDACTION_REGEX, key)
    assert re.search(SPARK_REDACTION_REGEX, key)


def test_spark_redaction_regex_leaves_plain_settings_alone():
    for key in ("sasl.username", "ssl.keystore.certificate.chain", "spark.sql.shuffle.partitions"):
        assert not re.search(SPARK_REDACTION_REGEX, key), key


def test_mask_mapping_masks_secret_values_at_any_depth():
    masked = mask_mapping(
        {
            "sasl.username": "alice",
            "sasl.jaas.config": f'x required password="{SECRET}";',
            "nested": {"ssl.key.password": SECRET, "n": [{"token": SECRET}, "keep"]},
            "tracking_uri": f"https://bob:{SECRET}@mlflow.example/api",
            "port": 9092,
        }
    )
    assert masked == {
        "sasl.username": "alice",
        "sasl.jaas.config": "***",
        "nested": {"ssl.key.password": "***", "n": [{"token": "***"}, "keep"]},
        "tracking_uri": "https://bob:***@mlflow.example/api",
        "port": 9092,
    }


@pytest.mark.parametrize(
    "url,masked",
    [
        (f"https://user:{SECRET}@host:5000/x", "https://user:***@host:5000/x"),
        (f"https://{SECRET}@github.com/o/r.git", "https://***@github.com/o/r.git"),
        (f"https://u:p@ss{SECRET}@host/", "https://u:***@host/"),
        (f"s3://b/k?X-Amz-Security-Token={SECRET}&v=1", "s3://b/k?X-Amz-Security-Token=***&v=1"),
        (
            f"uri=https://a:{SECRET}@h1/x and http://b:{SECRET}@h2",
            "uri=https://a:***@h1/x and http://b:***@h2",
        ),
        ("https://host/path?page=2", "https://host/path?page=2"),
        ("user@example.com", "user@example.com"),
        ("models:/fraud@champion", "models:/fraud@champion"),
    ],
)
def test_mask_url(url, masked):
    assert mask_url(url) == masked


def test_mask_text_replaces_known_secrets_longest_first():
    text = f"auth failed for {SECRET}123 and {SECRET}; empty stays"
    assert (
        mask_text(text, [SECRET, f"{SECRET}123", ""]) == "auth failed for *** and ***; empty stays"
    )
    assert mask_text("nothing here", [SECRET]) == "nothing here"


@pytest.mark.parametrize(
    "text,masked",
    [
        (f"sasl.password={SECRET}", "sasl.password=***"),
        (
            f'{{"sasl.password": "{SECRET}", "client.id": "c"}}',
            '{"sasl.password": "***", "client.id": "c"}',
        ),
        (f"sasl.password: {SECRET}, linger.ms: 5", "sasl.password: ***, linger.ms: 5"),
        (
            f"x required username=\"u\" password='{SECRET}';",
            "x required username=\"u\" password='***';",
        ),
        (f"tracking=https://u:{SECRET}@h", "tracking=https://u:***@h"),
        ("linger.ms=5", "linger.ms=5"),
    ],
)
def test_mask_assignments(text, masked):
    assert mask_assignments(text) == masked


def test_loggable_kafka_options_follow_the_policy():
    options = {
        "kafka.sasl.oauthbearer.config": f"clientSecret={SECRET}",
        "kafka.sasl.oauthbearer.assertion.private.key.passphrase": SECRET,
        "kafka.sasl.jaas.config": f'x required password="{SECRET}";',
        "kafka.sasl.oauthbearer.token.endpoint.url": "https://idp/token",
        "subscribe": "transactions",
    }
    logged = loggable(options)
    assert SECRET not in str(logged)
    assert logged["kafka.sasl.oauthbearer.token.endpoint.url"] == "https://idp/token"
    assert logged["subscribe"] == "transactions"


PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"


@pytest.mark.parametrize(
    "text,env,names",
    [
        ("kafka:\n  client:\n    sasl.password: hunter2\n", {}, "kafka.client.sasl.password"),
        ("", {"STREAMER_KAFKA__CLIENT": "sasl.password=hunter2"}, "kafka.client"),
        ("", {"STREAMER_KAFKA__CLIENT": "sasl.password=hunter2,client.id=c"}, "kafka.client"),
        (
            "",
            {"STREAMER_KAFKA__CLIENT": '{"sasl.password": "hunter2"}'},
            "kafka.client.sasl.password",
        ),
        ("", {"STREAMER_KAFKA__CLIENT__SASL_PASSWORD": "hunter2"}, "kafka.client.sasl.password"),
        (
            "",
            {"STREAMER_KAFKA__CLIENT": '{"ssl.key.password": "hunter2", "x": [1]}'},
            "kafka.client",
        ),
        ("kafka:\n  client:\n    sasl.jaas.config: {password: hunter2}\n", {}, "kafka.client"),
        ("kafka:\n  client:\n    sasl.jaas.config: a: hunter2\n", {}, "not valid YAML"),
        ("kafka: 'sasl.password=hunter2'\n", {}, "kafka"),
        (
            f"kafka:\n  client:\n    sasl.mechanism: PLAIN\n"
            f'    sasl.jaas.config: \'{PLAIN} required username="u" password="hunter2"\'\n',
            {},
            "kafka.client.sasl.jaas.config",
        ),
        (
            f"kafka:\n  client:\n    sasl.mechanism: PLAIN\n"
            f"    sasl.jaas.config: '{PLAIN} required username=\"u\" hunter2;'\n",
            {},
            "kafka.client.sasl.jaas.config",
        ),
        (
            "kafka:\n  backend: python\n  client:\n    ssl.keystore.password: hunter2\n"
            "    ssl.keystore.location: /ks.jks\n",
            {},
            "kafka.client.ssl.keystore.location",
        ),
        ("", {"STREAMER_MODEL__THRESHOLD": "https://u:hunter2@h"}, "model.threshold"),
    ],
)
def test_config_errors_never_show_a_secret(tmp_path, text, env, names):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env)
    message = str(info.value)
    assert names in message
    assert SECRET not in message
    assert "\n" not in message


def test_client_errors_say_where_the_setting_came_from(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("kafka:\n  client:\n    ssl.ca.location: /ca.pem\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == (
        f"config error: kafka.client.ssl.ca.location (from {path}) is librdkafka's name; use "
        "ssl.truststore.location with ssl.truststore.type: PEM (see docs/kafka-client-settings.md)"
    )
    with pytest.raises(
        ConfigError, match="from environment variable STREAMER_KAFKA__CLIENT__SASL_PASSWORD"
    ):
        load_config(None, env={"STREAMER_KAFKA__CLIENT__SASL_PASSWORD": "x"})


def test_python_backend_refuses_jvm_only_settings_at_load_and_jvm_takes_them():
    jks = {"STREAMER_KAFKA__CLIENT__SSL_TRUSTSTORE_LOCATION": "/ts.jks"}
    with pytest.raises(ConfigError, match="JKS truststore"):
        load_config(None, env={**jks, "STREAMER_KAFKA__BACKEND": "python"})
    config = load_config(None, env={**jks, "STREAMER_KAFKA__BACKEND": "jvm"})
    assert config.kafka.client["ssl.truststore.location"] == "/ts.jks"


def test_redacted_config_hides_url_credentials():
    config = load_config(
        None, env={"STREAMER_MODEL__TRACKING_URI": f"https://bob:{SECRET}@mlflow:5000"}
    )
    assert config.model.tracking_uri == f"https://bob:{SECRET}@mlflow:5000"
    assert config.redacted()["model"]["tracking_uri"] == "https://bob:***@mlflow:5000"


# The config's views, the Kafka client log lines and the log formatter each had their own
# rule once (the formatter masked only password/secret/token/jaas pairs); now all of them
# ask is_secret, so they agree on every name, both ways.
AGREE_SECRET = [
    "sasl.oauthbearer.config",
    "ssl.key.password",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "ssl.keystore.key",
    "basic.auth.user.info",
]
AGREE_PLAIN = ["ssl.key.location", "sasl.oauthbearer.token.endpoint.url", "sasl.username"]


def _shown_everywhere(key: str) -> dict[str, str]:
    import io
    import json
    import logging

    from streamer.config import FrozenMap
    from streamer.logs import configure_logging

    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    logging.getLogger("streamer.test").info('client %s="%s"', key, SECRET)
    logged = json.loads(stream.getvalue())[key]
    return {
        "config": FrozenMap({key: SECRET}).redacted()[key],
        "config error": mask_value(key, SECRET),
        "kafka options": loggable({f"kafka.{key}": SECRET})[f"kafka.{key}"],
        "log line": logged,
        "free text": mask_assignments(f"{key}={SECRET}").partition("=")[2],
    }


@pytest.mark.parametrize("key", AGREE_SECRET)
def test_every_masking_site_hides_the_same_secrets(key):
    assert set(_shown_everywhere(key).values()) == {"***"}


@pytest.mark.parametrize("key", AGREE_PLAIN)
def test_every_masking_site_shows_the_same_plain_settings(key):
    assert set(_shown_everywhere(key).values()) == {SECRET}
