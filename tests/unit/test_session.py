"""python_env: which interpreter the Python workers run, before the JVM starts."""

from __future__ import annotations

from streamer.session import python_env, spark_conf

ME = "/opt/venv/bin/python"


def test_this_interpreter_by_default_for_every_master():
    assert python_env(spark_conf(10_000, {}), {}, ME) == {"PYSPARK_PYTHON": ME}


def test_an_interpreter_chosen_in_the_environment_is_kept():
    env = {"PYSPARK_PYTHON": "/usr/bin/python3.11"}
    assert python_env({}, env, ME) == {"PYSPARK_PYTHON": "/usr/bin/python3.11"}


def test_the_spark_conf_wins_over_the_environment_as_with_spark_submit():
    conf = spark_conf(
        10_000,
        {"spark.pyspark.python": "/nodes/python", "spark.pyspark.driver.python": "/d/python"},
    )
    env = {"PYSPARK_PYTHON": "/usr/bin/python3", "PYSPARK_DRIVER_PYTHON": "/usr/bin/python3"}
    assert python_env(conf, env, ME) == {
        "PYSPARK_PYTHON": "/nodes/python",
        "PYSPARK_DRIVER_PYTHON": "/d/python",
    }


def test_packed_environment_route_leaves_the_driver_alone():
    conf = {
        "spark.archives": "s3://bucket/env.tar.gz#environment",
        "spark.pyspark.python": "./environment/bin/python",
    }
    assert python_env(conf, {}, ME) == {"PYSPARK_PYTHON": "./environment/bin/python"}


def test_spark_redacts_what_streamer_calls_secret():
    import re

    from streamer.secrets import is_secret

    conf = spark_conf(100, {})
    names = re.compile(conf["spark.redaction.regex"].removeprefix("(?i)"), re.I)
    options = re.compile(conf["spark.sql.redaction.options.regex"].removeprefix("(?i)"), re.I)
    strings = re.compile(conf["spark.redaction.string.regex"].removeprefix("(?i)"), re.I)
    for key in ("kafka.sasl.jaas.config", "kafka.ssl.key.password", "sasl.oauthbearer.config"):
        assert is_secret(key) and names.search(key) and options.search(key), key
    plan = 'kafka.sasl.jaas.config=ScramLoginModule required username="u" password="hunter2";'
    assert "hunter2" not in strings.sub("*", plan)
