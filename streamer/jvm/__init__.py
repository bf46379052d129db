"""JVM artifacts: Spark's Kafka connector and an Apache Kafka broker, resolved with Maven.

``pom.xml`` beside this module is the one source of truth for their versions. Each set is
resolved once with the machine's own Maven settings (``mvn dependency:copy-dependencies``)
into a directory of the user cache, ``<cache>/jars/<set>-<version>/``, and reused from there
without Maven or network. Why Maven and not ``spark.jars.packages``: Ivy inside Spark resolves
at every session start (network at run time, and its cache lives in ``~/.ivy2``), cannot
resolve the broker's jars for a process that is not Spark, and copies every transitive jar
(Scala, Hadoop, slf4j) beside Spark's own; Maven resolves both sets once, up front, with the
settings (mirrors, proxies) the machine already has, and the connector set keeps only the four
jars Spark lacks.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from streamer.errors import StreamerError

log = logging.getLogger(__name__)

POM = Path(str(resources.files("streamer.jvm").joinpath("pom.xml")))
CACHE_ENV = "STREAMER_CACHE_DIR"
CONNECTOR_JARS = (
    "spark-sql-kafka-0-10",
    "spark-token-provider-kafka-0-10",
    "kafka-clients",
    "commons-pool2",
)
_COMPLETE = ".complete"


class JarsError(StreamerError):
    """A set of JVM artifacts could not be resolved."""


def pom_property(name: str) -> str:
    """A ``<properties>`` value of the pom (the pinned versions)."""
    match = re.search(rf"<{re.escape(name)}>([^<]*)</{re.escape(name)}>", POM.read_text())
    if match is None:
        raise JarsError(f"{POM} has no property {name}")
    return match.group(1).strip()


def cache_root(env: Mapping[str, str]) -> Path:
    """``$STREAMER_CACHE_DIR``, else ``$XDG_CACHE_HOME/streamer``, else ``~/.cache/streamer``.
    Called by entry points with their environment; library code takes the path."""
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV]).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streamer"


@dataclass(frozen=True)
class JarSet:
    """One resolvable set: a pom profile at one version."""

    profile: str
    version: str
    properties: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.profile}-{self.version}"


def connector(spark_version: str) -> JarSet:
    """Spark's Kafka connector for ``spark_version`` (the running Spark's, normally)."""
    return JarSet("connector", spark_version, (("spark.version", spark_version),))


def broker() -> JarSet:
    """The Apache Kafka broker the pom pins."""
    return JarSet("broker", pom_property("kafka.version"))


@dataclass(frozen=True)
class JvmPaths:
    """Where jars are cached, and the Spark installation the service runs on."""

    cache: Path
    spark_home: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> JvmPaths:
        """From an entry point's environment: the cache root, and ``$SPARK_HOME`` (an EMR
        or docker image's Spark) else the installed pyspark's own directory."""
        if env.get("SPARK_HOME"):
            home = Path(env["SPARK_HOME"])
        else:
            import pyspark

            home = Path(pyspark.__file__).parent
        return cls(cache_root(env), home)


def cached(jar_set: JarSet, root: Path) -> list[Path] | None:
    """The set's jars if already resolved into the cache, else None."""
    directory = root / "jars" / jar_set.name
    if not (directory / _COMPLETE).exists():
        return None
    return sorted(directory.glob("*.jar"))


def resolve(jar_set: JarSet, root: Path, *, timeout: float = 600.0) -> list[Path]:
    """The set's jars: from the cache, or resolved with Maven into it (atomically, so a
    half-done resolution is never taken for a complete one)."""
    jars = cached(jar_set, root)
    if jars is not None:
        return jars
    mvn = shutil.which("mvn")
    if mvn is None:
        raise JarsError(
            f"cannot resolve the {jar_set.profile} jars: Maven (mvn) is not on PATH; install "
            f"Maven 3.8+, or put the jars in {root / 'jars' / jar_set.name} with a "
            f"{_COMPLETE} file"
        )
    target = root / "jars" / jar_set.name
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{jar_set.name}-", dir=target.parent))
    command = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(POM),
        f"-P{jar_set.profile}",
        "dependency:copy-dependencies",
        f"-Djars.dir={staging}",
        *(f"-D{key}={value}" for key, value in jar_set.properties),
    ]
    log.info('resolving jars set="%s" cache="%s"', jar_set.name, target)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise JarsError(f"Maven did not resolve {jar_set.name} within {timeout:.0f}s") from exc
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        reason = _maven_error(done.stdout + done.stderr)
        raise JarsError(f"Maven could not resolve {jar_set.name}: {reason}")
    staging.chmod(0o755)
    (staging / _COMPLETE).write_text("\n".join(sorted(p.name for p in staging.glob("*.jar"))))
    try:
        os.rename(staging, target)
    except OSError:  # resolved concurrently by another process: keep theirs
        shutil.rmtree(staging, ignore_errors=True)
    jars = cached(jar_set, root)
    assert jars is not None
    return jars


def _maven_error(output: str) -> str:
    for line in output.splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
        if line.startswith("[ERROR]") and len(line) > 8:
            return line.removeprefix("[ERROR]").strip()[:400]
    return output.strip().splitlines()[-1][:400] if output.strip() else "no output"


def connector_jars(spark_version: str, root: Path) -> list[Path]:
    """Spark's Kafka connector jars for this Spark version, resolved on first use."""
    return resolve(connector(spark_version), root)


def broker_jars(root: Path) -> list[Path]:
    """Apache Kafka's broker jars, resolved on first use."""
    return resolve(broker(), root)


def connector_on_classpath(spark_home: Path, conf: Mapping[str, str]) -> bool:
    """Whether Spark already gets the connector: a jar in Spark's own ``jars/`` (the docker
    and EMR images put it there) or named by ``spark.jars`` / ``spark.jars.packages``."""
    if any((spark_home / "jars").glob(f"{CONNECTOR_JARS[0]}_*.jar")):
        return True
    named = f"{conf.get('spark.jars', '')},{conf.get('spark.jars.packages', '')}"
    return CONNECTOR_JARS[0] in named


def connector_conf(
    backend: str, spark_version: str, spark_home: Path, conf: Mapping[str, str], root: Path
) -> dict[str, str]:
    """The ``spark.jars`` entry that puts Spark's Kafka connector on the classpath, or ``{}``.

    Only the ``jvm`` and ``auto`` backends need it, and only when Spark does not already have
    it. For ``jvm`` a resolution failure is fatal; for ``auto`` it is logged and the python
    backend is chosen later, when the connector class does not load.
    """
    if backend == "python" or connector_on_classpath(spark_home, conf):
        return {}
    try:
        jars = connector_jars(spark_version, root)
    except JarsError as exc:
        if backend == "jvm":
            raise
        log.warning('kafka connector unavailable; the python backend will be used error="%s"', exc)
        return {}
    existing = [j for j in conf.get("spark.jars", "").split(",") if j]
    return {"spark.jars": ",".join([*existing, *(str(j) for j in jars)])}
