"""One source of truth for JVM versions: streamer/jvm/pom.xml. The Dockerfiles, the dev
pyspark pin and the compose broker take theirs from it; these tests fail when one drifts."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from streamer import jvm

ROOT = Path(__file__).resolve().parents[2]
SERVICE_DOCKERFILE = (ROOT / "Dockerfile").read_text()
EMR_DOCKERFILE = (ROOT / "deploy/emr-eks/Dockerfile").read_text()
MAVEN_STAGE = "mvn -q -B -f /jvm/pom.xml -Pconnector dependency:copy-dependencies"
# A hand-typed artifact version: group/artifact paths or ARGs naming one.
HAND_TYPED = re.compile(r"(KAFKA_CLIENTS_VERSION|COMMONS_POOL2_VERSION|repo1\.maven|\.jar\")")


def test_the_pom_pins_spark_scala_and_kafka():
    assert re.fullmatch(r"4\.\d+\.\d+", jvm.pom_property("spark.version"))
    assert jvm.pom_property("scala.binary.version") == "2.13"
    assert re.fullmatch(r"4\.\d+\.\d+", jvm.pom_property("kafka.version"))


def test_the_dev_pyspark_pin_is_the_pom_spark_version():
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["dev"]
    (pin,) = [d for d in dev if d.startswith("pyspark")]
    assert pin == f"pyspark=={jvm.pom_property('spark.version')}"


def test_the_service_image_resolves_the_connector_from_the_pom():
    assert "COPY streamer/jvm/pom.xml /jvm/pom.xml" in SERVICE_DOCKERFILE
    assert MAVEN_STAGE in SERVICE_DOCKERFILE
    # pyspark at the pom's spark.version, read from the pom at build time
    assert "<spark.version>" in SERVICE_DOCKERFILE and '"pyspark==${SPARK_VERSION}"' in (
        SERVICE_DOCKERFILE
    )
    assert not HAND_TYPED.search(SERVICE_DOCKERFILE), HAND_TYPED.search(SERVICE_DOCKERFILE)
    assert "-Dspark.version" not in SERVICE_DOCKERFILE, "the pom's own spark.version is used"


def test_the_emr_image_resolves_the_connector_for_its_own_spark():
    assert "COPY streamer/jvm/pom.xml /jvm/pom.xml" in EMR_DOCKERFILE
    assert MAVEN_STAGE in EMR_DOCKERFILE
    assert '-Dspark.version="$(cat /spark-version)"' in EMR_DOCKERFILE
    assert "/usr/lib/spark/jars/spark-core_2.13-" in EMR_DOCKERFILE
    assert "COPY --from=jars /jars/ /usr/lib/spark/jars/" in EMR_DOCKERFILE
    assert not HAND_TYPED.search(EMR_DOCKERFILE), HAND_TYPED.search(EMR_DOCKERFILE)


def test_the_emr_version_probe_reads_an_amzn_spark_core_jar():
    """The sed expression of the EMR Dockerfile, applied to EMR's jar name."""
    (expression,) = re.findall(r"sed -E '(s/.*?/\\1/)'", EMR_DOCKERFILE)
    pattern, replacement = expression[2:].split("/", 1)
    pattern = pattern.replace("\\\\", "\\")
    jar = "/usr/lib/spark/jars/spark-core_2.13-4.0.2-amzn-0.jar"
    assert re.sub(pattern, replacement.rstrip("/").replace("\\1", r"\1"), jar) == "4.0.2"


def test_compose_runs_the_pinned_apache_kafka():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    version = jvm.pom_property("kafka.version")
    assert services["kafka"]["image"] == f"apache/kafka:{version}"
    assert services["kafka-init"]["image"] == f"apache/kafka:{version}"


def test_the_connector_set_is_the_four_jars_spark_lacks():
    pom = jvm.POM.read_text()
    (include,) = re.findall(r"<jars.include>(spark-sql-kafka[^<]*)</jars.include>", pom)
    assert [name.split("_")[0] for name in include.split(",")] == list(jvm.CONNECTOR_JARS)
