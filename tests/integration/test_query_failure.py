"""A query that dies is reported, not hidden: a deleted input topic fails the run cleanly.

The error text varies: usually the source's ``MissingTopicError`` (``topic ... does not
exist``), sometimes only ``java.io.EOFException`` from Spark's Python source runner, so the
test asserts the outcome and the probes, not the wording."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient

from tests.helpers import assert_eventually, consume_all, produce
from tests.integration.models import event_records
from tests.integration.runner import Running

pytestmark = pytest.mark.integration


def test_deleted_input_topic_fails_the_run_and_the_probes(
    spark, kafka_bootstrap, kafka_backend, service_topics, service_config
):
    topics = service_topics(partitions=1)
    produce(kafka_bootstrap, topics["in"], event_records(20, seed=61))
    config = service_config(
        topics,
        spark={"trigger": "500 milliseconds"},
        kafka={"backend": kafka_backend},
    )
    running = Running(config, spark)
    consume_all(kafka_bootstrap, topics["out"], 20, timeout=240)
    assert running.service.health() == (True, "ok")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.delete_topics([topics["in"]]).values():
        future.result(timeout=30)

    def unhealthy():
        ok, reason = running.service.health()
        assert not ok and reason.startswith("query failed: "), reason

    assert_eventually(unhealthy, timeout=120)
    assert running.service.readiness()[0] is False
    result = running.stop()
    assert result.outcome == "failed" and result.error
    assert result.totals.outputs == 20
