"""One root exception for streamer; each stage raises a subclass of it.

Third-party errors are wrapped with ``raise ... from exc`` so the cause stays visible.
"""


class StreamerError(Exception):
    """Root of every error streamer raises on purpose."""


class ConfigError(StreamerError):
    """A configuration key has a bad value. The message names the key, the value and the fix."""


class ModelError(StreamerError):
    """The model cannot be resolved, loaded, or validated against its signature."""


class KafkaIOError(StreamerError):
    """A Kafka backend cannot be selected, reached, or used."""


class OffsetsError(StreamerError):
    """Start offsets cannot be loaded, parsed or applied."""


class MissingTopicError(KafkaIOError):
    """A topic the service needs does not exist (not a transient broker problem)."""


class DeployError(StreamerError):
    """A handoff or a deployment cannot proceed (lease held, takeover timed out, EMR error)."""


class LeaseLostError(DeployError):
    """Another instance took the lease over; this one must stop without writing."""
