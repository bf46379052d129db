"""The start-up probe against a closed port: one line, within its grace period."""

from __future__ import annotations

import pytest

from streamer.errors import KafkaIOError
from streamer.kafka.processes import free_port
from streamer.kafka.reach import reach


def test_a_closed_port_is_named_in_one_line():
    servers = f"127.0.0.1:{free_port()}"
    with pytest.raises(KafkaIOError) as failure:
        reach(servers, {}, grace=1.0, timeout=30.0)
    message = str(failure.value)
    assert "\n" not in message
    assert f"cannot reach Kafka at kafka.bootstrap_servers = '{servers}'" in message
    assert "Connection refused" in message
