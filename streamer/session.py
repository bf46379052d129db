"""Build the SparkSession the pipeline runs in.

Arrow is switched on for pandas conversion and for Python UDFs; the caller's conf is
merged as ``{**defaults, **user, **required}`` so a user cannot switch off what must hold.

Which Python the Python workers run (:func:`python_env`) is settled here too, before the
JVM starts: PySpark takes it only from the environment.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

from pyspark.sql import SparkSession

from streamer.errors import SparkError, root_cause
from streamer.secrets import SPARK_REDACTION_REGEX, SPARK_STRING_REDACTION_REGEX

log = logging.getLogger(__name__)

DEFAULT_CONF: Mapping[str, str] = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.streaming.stopGracefullyOnShutdown": "true",
    "spark.python.worker.reuse": "true",
    # secrets in Spark's UI, event log and plan strings: every name streamer calls secret
    "spark.redaction.regex": SPARK_REDACTION_REGEX,
    "spark.sql.redaction.options.regex": SPARK_REDACTION_REGEX + "|url",
    "spark.redaction.string.regex": SPARK_STRING_REDACTION_REGEX,
}

REQUIRED_CONF: Mapping[str, str] = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.pythonUDF.arrow.enabled": "true",
}


def spark_conf(arrow_batch_size: int, user_conf: Mapping[str, str]) -> dict[str, str]:
    """The Spark conf streamer runs with: defaults, then the user's conf, then what must hold."""
    return {
        **DEFAULT_CONF,
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(arrow_batch_size),
        **{k: str(v) for k, v in user_conf.items()},
        **REQUIRED_CONF,
    }


PYTHON_CONF: Mapping[str, str] = {
    "spark.pyspark.python": "PYSPARK_PYTHON",
    "spark.pyspark.driver.python": "PYSPARK_DRIVER_PYTHON",
}
"""Spark conf keys naming an interpreter → the variable PySpark actually reads."""


def python_env(
    conf: Mapping[str, str], environ: Mapping[str, str], executable: str
) -> dict[str, str]:
    """The ``PYSPARK_*`` variables a session started from this process needs.

    PySpark reads the Python workers' interpreter only from ``PYSPARK_PYTHON``, when the
    SparkContext starts, and hands that path to every Python worker: the executors' and
    the driver's own (the Python data source planner of the ``python`` backend runs on the
    driver). ``spark.pyspark.python`` in the Spark conf is honoured only by
    ``spark-submit``, which exports it; a service that starts its own JVM must do the same,
    or the workers run ``python3`` from ``PATH``, which lacks streamer
    (``PYTHON_DATA_SOURCE_ERROR ... No module named 'streamer'``). So:

    - ``spark.pyspark.python`` / ``spark.pyspark.driver.python`` given in ``spark.conf``
      become ``PYSPARK_PYTHON`` / ``PYSPARK_DRIVER_PYTHON`` (the conf wins over the
      environment, as with ``spark-submit``);
    - otherwise ``PYSPARK_PYTHON`` stays as the environment has it, or becomes
      ``executable`` (this interpreter), for every master. On a cluster an interpreter must
      then exist at that same path on every node, e.g. an EMR on EKS custom image or a
      Spark node with the same virtualenv.

    The packed-environment route works as Spark documents it: ship the environment with
    ``spark.archives: <env.tar.gz>#environment`` and set
    ``spark.pyspark.python: ./environment/bin/python``. Executors unpack the archive into
    their working directory and resolve the relative path there. The driver process keeps
    its own interpreter (leave ``spark.pyspark.driver.python`` unset), but Python workers
    the driver starts itself (the ``python`` backend's data source planner) get the same
    relative path and resolve it from the driver's working directory. ``spark-submit`` in
    Kubernetes (EMR on EKS) or YARN cluster mode unpacks ``spark.archives`` there too
    (SPARK-33748), so the route works as is. A driver started directly (``streamer run``,
    client mode) has no ``./environment``: :func:`build_session` warns, and the planner
    fails with ``Cannot run program "./environment/bin/python"``; use the ``jvm`` backend
    there, or an interpreter at the same absolute path on every node.
    """
    chosen = {var: conf[key] for key, var in PYTHON_CONF.items() if conf.get(key)}
    chosen.setdefault("PYSPARK_PYTHON", environ.get("PYSPARK_PYTHON") or executable)
    return chosen


def build_session(
    *,
    master: str | None,
    app_name: str,
    arrow_batch_size: int = 10_000,
    conf: Mapping[str, str] | None = None,
) -> SparkSession:
    """Get or create the SparkSession.

    ``master=None`` (``spark.master: null``) leaves the master to the launcher: under
    ``spark-submit`` on a cluster such as EMR, the submitted master is used. A master given
    here wins over the launcher's, so cluster configs set it to null.
    """
    merged = spark_conf(arrow_batch_size, conf or {})
    # The one place streamer sets process environment variables: PySpark reads the Python
    # workers' interpreter only from PYSPARK_PYTHON / PYSPARK_DRIVER_PYTHON, when the JVM
    # and SparkContext start (see python_env).
    for var, value in python_env(merged, os.environ, sys.executable).items():
        if os.environ.get(var) != value:
            os.environ[var] = value
            log.info('python for spark set variable="%s" value="%s"', var, value)
    python = os.environ["PYSPARK_PYTHON"]
    if not os.path.isabs(python) and not os.path.exists(python):
        log.warning(
            "python for spark is relative and absent from the driver's working directory; "
            "executors resolve it in theirs (spark.archives), Python workers the driver "
            "starts (the python backend's data source planner) cannot run it "
            'python="%s" cwd="%s"',
            python,
            os.getcwd(),
        )
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    for key, value in merged.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # Py4JJavaError, PySparkRuntimeError (JVM did not start), ...
        raise SparkError(
            f"cannot start the Spark session (spark.master = {master!r}): {root_cause(exc)}"
        ) from exc
    spark.sparkContext.setLogLevel("WARN")
    _quiet_kafka_clients(spark)
    log.info(
        'spark session ready master="%s" version="%s"', spark.sparkContext.master, spark.version
    )
    return spark


def _quiet_kafka_clients(spark: SparkSession) -> None:
    """The JVM Kafka clients' own WARN lines (a refused connection every second while a
    broker is away, from Spark's pooled producers even after the session stops) go to
    stderr as plain text; streamer reports broker trouble itself, so only their errors
    are kept."""
    jvm = spark.sparkContext._jvm
    try:
        level = jvm.org.apache.logging.log4j.Level.ERROR  # type: ignore[union-attr]
        jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(  # type: ignore[union-attr]
            "org.apache.kafka", level
        )
    except Exception as exc:  # a Spark without log4j 2: keep its default levels
        log.debug('kafka client log level unchanged error="%s"', exc)
