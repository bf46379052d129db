"""Start planning: which offsets a run starts at, from the store, the broker and a reset."""

from __future__ import annotations

import pytest

from streamer.errors import KafkaIOError, OffsetsError
from streamer.offsets.startup import offset_difference, plan_start
from streamer.offsets.stores import FileStore

EARLIEST = {("t", 0): 100, ("t", 1): 0}
LATEST = {("t", 0): 500, ("t", 1): 50}


def _plan(store, reset=None, policy="fail", ends=lambda: (EARLIEST, LATEST)):
    skipped: list[tuple[str, int]] = []
    plan, history = plan_start(
        store,
        reset,
        ends,
        policy=policy,
        default_start="earliest",
        on_skipped=lambda topic, count: skipped.append((topic, count)),
    )
    return plan, history, skipped


def test_an_empty_store_starts_at_the_default(tmp_path):
    plan, history, _ = _plan(FileStore(tmp_path))
    assert (plan.offsets, history) == ({}, {})
    assert plan.origin == "empty store, kafka.starting_offsets=earliest"


def test_the_stored_position_is_the_start_and_the_history(tmp_path):
    store = FileStore(tmp_path)
    store.save({"t": {0: 200}, "old": {0: 3}}, batch_id=4, writer="q")
    plan, history, skipped = _plan(store)
    assert plan.offsets == {"t": {0: 200}}
    assert history == {"t": {0: 200}, "old": {0: 3}}
    assert plan.origin.startswith("store generation") and not skipped


def test_a_skip_is_counted_per_topic(tmp_path):
    store = FileStore(tmp_path)
    store.save({"t": {0: 40}}, batch_id=1, writer="q")
    with pytest.raises(OffsetsError):
        _plan(store)
    plan, _, skipped = _plan(store, policy="skip")
    assert plan.offsets == {"t": {0: 100}} and skipped == [("t", 60)]


def test_a_reset_is_saved_before_the_start_and_json_merges_over_the_store(tmp_path):
    store = FileStore(tmp_path)
    store.save({"t": {0: 200, 1: 20}}, batch_id=1, writer="q")
    plan, history, _ = _plan(store, reset='{"t": {"1": 7}}')
    assert plan.offsets == {"t": {0: 200, 1: 7}} and history == {}
    assert plan.origin == '--reset-offsets {"t": {"1": 7}}'
    stored = store.load()
    assert stored is not None and stored.offsets == plan.offsets and stored.writer == "reset"
    plan, _, _ = _plan(store, reset="latest")
    assert plan.offsets == {"t": {0: 500, 1: 50}}


def test_a_transient_broker_error_is_retried(tmp_path, monkeypatch):
    monkeypatch.setattr("streamer.offsets.startup.time.sleep", lambda _: None)
    answers = iter([KafkaIOError("slow"), (EARLIEST, LATEST)])

    def ends():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    plan, _, _ = _plan(FileStore(tmp_path), reset="earliest", ends=ends)
    assert plan.offsets == {"t": {0: 100, 1: 0}}


def test_offset_difference_counts_lost_and_duplicated_events():
    previous = {"t": {0: 100, 1: 50, 2: 9}}
    assert offset_difference(previous, {"t": {0: 110, 1: 45, 3: 0}}) == (10, 5)
