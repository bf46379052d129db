# The streamer service image: Python 3.11, Java 17, streamer, and Spark's Kafka connector
# (so kafka.backend: auto picks the jvm backend). It has the train extra: docker-compose.yml
# trains the demo model in this image, and the service loads that scikit-learn model.
# Every JVM version comes from streamer/jvm/pom.xml: the connector's jars are resolved by
# Maven from that pom, and pyspark is installed at the pom's spark.version.
# tests/unit/test_versions.py checks this file.

FROM maven:3.9-eclipse-temurin-17 AS jars
COPY streamer/jvm/pom.xml /jvm/pom.xml
RUN mvn -q -B -f /jvm/pom.xml -Pconnector dependency:copy-dependencies -Djars.dir=/jars

FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/*
ENV JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64

WORKDIR /app
COPY pyproject.toml README.md ./
COPY streamer ./streamer
COPY conf ./conf
RUN SPARK_VERSION="$(sed -n 's:.*<spark.version>\(.*\)</spark.version>.*:\1:p' streamer/jvm/pom.xml)" \
 && pip install --no-cache-dir ".[train]" "pyspark==${SPARK_VERSION}"

COPY --from=jars /jars /tmp/connector
RUN cp /tmp/connector/*.jar "$(python -c 'import pyspark, os; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')" \
 && rm -rf /tmp/connector

RUN useradd --create-home streamer && mkdir -p /state && chown streamer /state
USER streamer
VOLUME /state
EXPOSE 9108
ENTRYPOINT ["streamer"]
CMD ["run", "--config", "/app/conf/docker.yaml"]
