# The streamer service image: Python 3.11, Java 17, streamer, and Spark's Kafka connector
# (so kafka.backend: auto picks the jvm backend). SPARK_VERSION must equal the pyspark pin in
# pyproject.toml; tests/unit/test_compose.py checks it.
FROM python:3.11-slim-bookworm

ARG SPARK_VERSION=4.3.0
ARG SCALA_BINARY=2.13
ARG KAFKA_CLIENTS_VERSION=3.9.1
ARG COMMONS_POOL2_VERSION=2.12.1
ARG MAVEN=https://repo1.maven.org/maven2

RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless curl \
 && rm -rf /var/lib/apt/lists/*
ENV JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64

WORKDIR /app
COPY pyproject.toml README.md ./
COPY streamer ./streamer
COPY conf ./conf
RUN pip install --no-cache-dir .

RUN JARS="$(python -c 'import pyspark, os; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')" \
 && cd "$JARS" \
 && curl -fsSLO "$MAVEN/org/apache/spark/spark-sql-kafka-0-10_${SCALA_BINARY}/${SPARK_VERSION}/spark-sql-kafka-0-10_${SCALA_BINARY}-${SPARK_VERSION}.jar" \
 && curl -fsSLO "$MAVEN/org/apache/spark/spark-token-provider-kafka-0-10_${SCALA_BINARY}/${SPARK_VERSION}/spark-token-provider-kafka-0-10_${SCALA_BINARY}-${SPARK_VERSION}.jar" \
 && curl -fsSLO "$MAVEN/org/apache/kafka/kafka-clients/${KAFKA_CLIENTS_VERSION}/kafka-clients-${KAFKA_CLIENTS_VERSION}.jar" \
 && curl -fsSLO "$MAVEN/org/apache/commons/commons-pool2/${COMMONS_POOL2_VERSION}/commons-pool2-${COMMONS_POOL2_VERSION}.jar"

RUN useradd --create-home streamer && mkdir -p /state && chown streamer /state
USER streamer
VOLUME /state
EXPOSE 9108
ENTRYPOINT ["streamer"]
CMD ["run", "--config", "/app/conf/docker.yaml"]
