"""streamer: score Kafka events with an MLflow pyfunc model in Spark Structured Streaming."""

__version__ = "0.1.0"
