"""produce-until-delivered (streamer.kafka.io) against a fake producer: a full local
queue is waited out, and anything not delivered raises with its cause."""

import time

import pytest

from streamer.errors import KafkaIOError
from streamer.kafka import io


class FakeProducer:
    """Takes ``room`` records before its queue is full; ``poll`` delivers what is queued,
    failing the records whose value is ``b"bad"``; ``flush`` leaves ``stuck`` undelivered."""

    def __init__(self, conf=None, room: int = 2, stuck: int = 0) -> None:
        self.conf, self.room, self.stuck = conf, room, stuck
        self.queued: list[tuple] = []
        self.sent: list[tuple] = []
        self.polls = 0

    def produce(self, topic, value=None, key=None, on_delivery=None, **kwargs):
        if len(self.queued) >= self.room:
            raise BufferError("queue full")
        self.queued.append((topic, key, value, kwargs, on_delivery))

    def poll(self, timeout=0):
        self.polls += 1
        for topic, key, value, kwargs, on_delivery in self.queued:
            self.sent.append((topic, key, value, kwargs))
            if on_delivery is not None:
                on_delivery("broker said no" if value == b"bad" else None, None)
        self.queued.clear()
        return 0

    def flush(self, timeout=None):
        self.poll()
        return self.stuck


def test_send_waits_out_a_full_queue():
    producer = FakeProducer(room=1)
    for i in range(3):
        io.send(producer, "t", b"v%d" % i, b"k")
    producer.flush()
    assert [value for _, _, value, _ in producer.sent] == [b"v0", b"v1", b"v2"]
    assert producer.polls >= 2


def test_send_gives_up_at_its_deadline():
    class Full(FakeProducer):
        def poll(self, timeout=0):
            return 0

    producer = Full(room=0)
    with pytest.raises(KafkaIOError, match="queue for t stayed full"):
        io.send(producer, "t", b"v", deadline=time.monotonic())


def test_finish_counts_deliveries_and_names_the_first_failure():
    producer, delivery = FakeProducer(room=10), io.Delivery()
    for value in (b"a", b"bad", b"c"):
        io.send(producer, "t", value, on_delivery=delivery)
    with pytest.raises(KafkaIOError, match="1 records failed to deliver to t: broker said no"):
        io.finish(producer, delivery, "t", timeout=1)
    assert delivery.delivered == 2


def test_finish_says_how_many_were_not_delivered():
    producer = FakeProducer(stuck=3)
    with pytest.raises(KafkaIOError, match="3 records not delivered to t within 5s"):
        io.finish(producer, io.Delivery(), "t", timeout=5)


def test_produce_all_partitions_by_index_and_returns_the_delivered_count(monkeypatch):
    made: list[FakeProducer] = []
    monkeypatch.setattr(io, "Producer", lambda conf: made.append(FakeProducer(conf)) or made[-1])
    records = [(b"k%d" % i, b"v%d" % i) for i in range(5)]
    count = io.produce_all(
        "b:9092", {"client.id": "c"}, "t", records, partition=lambda i: i % 2, defaults={"acks": 1}
    )
    assert count == 5
    [producer] = made
    assert producer.conf["bootstrap.servers"] == "b:9092"
    assert producer.conf["client.id"] == "c" and producer.conf["acks"] == 1
    assert [kwargs["partition"] for *_, kwargs in producer.sent] == [0, 1, 0, 1, 0]


def test_produce_all_keeps_to_its_rate(monkeypatch):
    monkeypatch.setattr(io, "Producer", lambda conf: FakeProducer(conf, room=100))
    started = time.monotonic()
    io.produce_all("b:9092", {}, "t", [(None, b"v")] * 5, rate=50)
    assert time.monotonic() - started >= 4 / 50
