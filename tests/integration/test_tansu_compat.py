"""tansu stays a compatibility target for the python backend: the spine runs on it exactly,
with its ListOffsets bug worked around (``kafka.end_offsets: auto`` → fetch)."""

from __future__ import annotations

import pytest

from streamer.kafka.broker import EmbeddedBroker
from tests.helpers import consume_all, produce
from tests.integration.models import event_records
from tests.integration.runner import Running, config_for, source_positions

pytestmark = pytest.mark.integration


def test_python_backend_scores_exactly_on_tansu(spark, fraud_classifier, tmp_path):
    from streamer.kafka.admin import create_topics

    with EmbeddedBroker(log_dir=tmp_path) as tansu:
        bootstrap = tansu.bootstrap_servers
        topics = {"in": "in", "out": "out", "dlq": "dlq"}
        create_topics(bootstrap, {}, {"in": 2, "out": 1, "dlq": 1})
        events = [*event_records(400, seed=81), (b"bad", b"{nope")]
        # several records per produce batch: the tail of the last one is what tansu hides
        produce(bootstrap, topics["in"], events, **{"linger.ms": 200})
        config = config_for(
            tmp_path,
            bootstrap=bootstrap,
            topics=topics,
            model=fraud_classifier,
            kafka={"backend": "python", "end_offsets": "auto"},
            spark={"trigger": "500 milliseconds"},
        )
        running = Running(config, spark)
        try:
            outputs = consume_all(bootstrap, topics["out"], 400, timeout=240)
            dead = consume_all(bootstrap, topics["dlq"], 1, timeout=60)
        finally:
            result = running.stop()
    assert result.outcome == "stopped", result.error
    seen = source_positions(outputs + dead)
    assert len(seen) == len(events) and set(seen.values()) == {1}
    assert running.service.backend is not None and running.service.backend.name == "python"
