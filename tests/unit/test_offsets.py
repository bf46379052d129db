"""Offsets: JSON shape, the file store's atomic generations, start-up policies."""

from __future__ import annotations

import json
import logging
import os

import pytest

from streamer.errors import OffsetsError
from streamer.kafka import starting_offsets_json
from streamer.offsets import format_offsets, merge_offsets, parse_offsets
from streamer.offsets.startup import check_stored, parse_reset, resolve_reset
from streamer.offsets.stores import FileStore, decode, encode


def test_listener_offset_json_round_trips():
    text = '{"events": {"0": 2000, "10": 7, "2": 1999}}'
    offsets = parse_offsets(text)
    assert offsets == {"events": {0: 2000, 10: 7, 2: 1999}}
    assert format_offsets(offsets) == '{"events":{"0":2000,"2":1999,"10":7}}'
    assert parse_offsets(format_offsets(offsets)) == offsets


@pytest.mark.parametrize("first_batch", [None, "None", "", "null"])
def test_first_batch_start_offset_means_none(first_batch):
    assert parse_offsets(first_batch) == {}


def test_stored_document_round_trips():
    offsets = {"a": {0: 5, 1: 9}, "b": {0: 0}}
    stored = decode(encode(offsets, batch_id=7, writer="q"), generation="g")
    assert (stored.offsets, stored.batch_id, stored.writer, stored.generation) == (
        offsets,
        7,
        "q",
        "g",
    )
    assert isinstance(stored.written_at, int)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b'{"format": 1, "offsets": {"a": {"0": 5}',
        b'{"format": 2, "offsets": {}}',
        b'{"format": 1, "offsets": {"a": {"0": -3}}}',
        b'{"format": 1, "offsets": ["a"]}',
        b"\xff\xfe",
    ],
)
def test_defective_documents_are_rejected(data):
    with pytest.raises(OffsetsError):
        decode(data)


def test_file_store_empty_then_round_trip(tmp_path):
    store = FileStore(tmp_path / "offsets", keep=3)
    assert store.load() is None
    store.save({"t": {0: 10, 1: 20}}, batch_id=0)
    loaded = store.load()
    assert loaded is not None
    assert loaded.offsets == {"t": {0: 10, 1: 20}}
    assert loaded.batch_id == 0


def test_file_store_keeps_the_last_n_generations(tmp_path):
    store = FileStore(tmp_path, keep=3)
    for i in range(6):
        store.save({"t": {0: i}}, batch_id=i)
    assert sorted(os.listdir(tmp_path)) == [
        "offsets-000000000003.json",
        "offsets-000000000004.json",
        "offsets-000000000005.json",
    ]
    assert FileStore(tmp_path).load().offsets == {"t": {0: 5}}


def test_new_store_instance_continues_the_numbering(tmp_path):
    FileStore(tmp_path).save({"t": {0: 1}})
    FileStore(tmp_path).save({"t": {0: 2}})
    assert FileStore(tmp_path).load().generation == "offsets-000000000001.json"


def test_a_write_that_dies_before_rename_leaves_the_previous_generation(tmp_path, monkeypatch):
    store = FileStore(tmp_path)
    store.save({"t": {0: 1}})

    def crash(*_args):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OffsetsError, match="disk gone"):
        store.save({"t": {0: 2}})
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["offsets-000000000000.json"], "no temp file left behind"
    assert FileStore(tmp_path).load().offsets == {"t": {0: 1}}


@pytest.mark.parametrize("damage", [b"", b'{"format": 1, "offs', b"\x00" * 64])
def test_torn_newest_generation_falls_back_with_a_warning(tmp_path, caplog, damage):
    store = FileStore(tmp_path)
    store.save({"t": {0: 100}})
    store.save({"t": {0: 200}})
    (tmp_path / "offsets-000000000001.json").write_bytes(damage)
    with caplog.at_level(logging.WARNING):
        loaded = FileStore(tmp_path).load()
    assert loaded.offsets == {"t": {0: 100}}
    assert "offsets generation unreadable" in caplog.text
    assert "offsets-000000000001.json" in caplog.text


def test_after_a_fallback_the_next_save_is_a_newer_generation(tmp_path):
    store = FileStore(tmp_path)
    store.save({"t": {0: 100}})
    store.save({"t": {0: 200}})
    (tmp_path / "offsets-000000000001.json").write_bytes(b"")
    reopened = FileStore(tmp_path)
    reopened.load()
    reopened.save({"t": {0: 300}})
    assert FileStore(tmp_path).load().offsets == {"t": {0: 300}}


def test_all_generations_unreadable_refuses_with_the_way_out(tmp_path):
    (tmp_path / "offsets-000000000000.json").write_bytes(b"junk")
    (tmp_path / "offsets-000000000001.json").write_bytes(b"")
    with pytest.raises(OffsetsError, match=r"none is readable.*--reset-offsets"):
        FileStore(tmp_path).load()


def test_unrelated_files_are_ignored(tmp_path):
    (tmp_path / "README").write_text("x")
    (tmp_path / ".offsets-abc.tmp").write_text("half")
    assert FileStore(tmp_path).load() is None


def test_new_partitions_take_the_default_start():
    stored = {"t": {0: 10, 1: 20}}
    partitions = {"t": [0, 1, 2, 3], "u": [0]}
    got = json.loads(starting_offsets_json(stored, partitions, "earliest"))
    assert got == {"t": {"0": 10, "1": 20, "2": -2, "3": -2}, "u": {"0": -2}}
    got = json.loads(starting_offsets_json(stored, partitions, "latest"))
    assert got["t"]["2"] == -1 and got["u"]["0"] == -1


def test_merge_keeps_idle_partitions_and_takes_newer_ones():
    assert merge_offsets({"t": {0: 5, 1: 7}}, {"t": {1: 9, 2: 1}}, {"u": {0: 3}}) == {
        "t": {0: 5, 1: 9, 2: 1},
        "u": {0: 3},
    }


EARLIEST = {("t", 0): 100, ("t", 1): 0}
LATEST = {("t", 0): 500, ("t", 1): 50}


def test_in_range_offsets_start_where_stored():
    start, skipped = check_stored({"t": {0: 100, 1: 50}}, EARLIEST, LATEST, "fail")
    assert start == {"t": {0: 100, 1: 50}} and skipped == {}


def test_partitions_the_broker_lacks_are_dropped():
    start, _ = check_stored({"t": {0: 200, 9: 5}, "gone": {0: 1}}, EARLIEST, LATEST, "fail")
    assert start == {"t": {0: 200}}


def test_below_earliest_fails_by_default_naming_partition_and_fix():
    with pytest.raises(OffsetsError) as err:
        check_stored({"t": {0: 40}}, EARLIEST, LATEST, "fail")
    message = str(err.value)
    assert "t[0] stored 40 < earliest 100" in message
    assert "offsets.on_out_of_range: skip" in message
    assert "--reset-offsets" in message


def test_below_earliest_skips_loudly_when_told(caplog):
    with caplog.at_level(logging.WARNING):
        start, skipped = check_stored({"t": {0: 40, 1: 3}}, EARLIEST, LATEST, "skip")
    assert start == {"t": {0: 100, 1: 3}}
    assert skipped == {("t", 0): 60}
    assert "OFFSETS OUT OF RANGE" in caplog.text


def test_above_latest_means_a_recreated_topic():
    with pytest.raises(OffsetsError, match="topic recreated"):
        check_stored({"t": {1: 51}}, EARLIEST, LATEST, "fail")
    start, skipped = check_stored({"t": {1: 51}}, EARLIEST, LATEST, "skip")
    assert start == {"t": {1: 0}} and skipped == {}


def test_reset_resolves_to_concrete_offsets():
    assert resolve_reset("earliest", EARLIEST, LATEST) == {"t": {0: 100, 1: 0}}
    assert resolve_reset("latest", EARLIEST, LATEST) == {"t": {0: 500, 1: 50}}
    assert resolve_reset('{"t": {"1": 7}}', EARLIEST, LATEST) == {"t": {1: 7}}


@pytest.mark.parametrize("spec", ["latests", "{}", '{"t": {"0": -1}}', "[1]"])
def test_bad_reset_specs_are_refused(spec):
    with pytest.raises(OffsetsError):
        parse_reset(spec)


def test_reset_to_a_partition_the_broker_lacks_is_refused():
    with pytest.raises(OffsetsError, match="lacks"):
        resolve_reset('{"t": {"5": 7}}', EARLIEST, LATEST)


def test_lag_counts_from_the_position_or_the_earliest():
    from streamer.offsets.core import lag

    assert lag({"t": {0: 450}}, EARLIEST, LATEST) == {("t", 0): 50, ("t", 1): 50}
    assert lag({"t": {0: 500, 1: 60}}, EARLIEST, LATEST) == {("t", 0): 0, ("t", 1): 0}


class _Progress:
    """The fields of a StreamingQueryProgress the offsets listener reads."""

    def __init__(self, name: str, batch_id: int, end: str) -> None:
        self.name, self.batchId = name, batch_id
        self.sources = [type("Source", (), {"endOffset": end})()]


class _Event:
    def __init__(self, progress: _Progress) -> None:
        self.progress = progress


class _BrokenStore:
    kind = "kafka-group"
    description = "broken"

    def save(self, offsets, *, batch_id=None, writer=None):
        raise OffsetsError("coordinator unavailable")

    def load(self):
        return None

    def close(self):
        pass


def test_listener_persists_full_position_and_survives_a_failing_store(tmp_path):
    from streamer.offsets.listener import OffsetsListener

    failures: list[str] = []
    store = FileStore(tmp_path)
    listener = OffsetsListener("q", store, initial={"t": {0: 5, 1: 7}}, on_failure=failures.append)
    listener.onQueryProgress(_Event(_Progress("q", 0, '{"t": {"0": 9}}')))
    listener.onQueryProgress(_Event(_Progress("other", 1, '{"t": {"0": 99}}')))
    assert store.load().offsets == {"t": {0: 9, 1: 7}}
    assert listener.wait_persisted(0, timeout=1)

    broken = OffsetsListener("q", _BrokenStore(), on_failure=failures.append)
    broken.onQueryProgress(_Event(_Progress("q", 3, '{"t": {"0": 1}}')))  # must not raise
    assert failures == ["kafka-group"]
    assert broken.wait_persisted(3, timeout=1) is False
    assert broken.flush(attempts=2, backoff=0) is False and broken.failures == 3


def test_a_failing_secondary_does_not_hold_back_the_primary(tmp_path):
    from streamer.offsets.listener import OffsetsListener
    from streamer.offsets.stores import MirroredStore

    failures: list[str] = []
    mirrored = MirroredStore(FileStore(tmp_path), [_BrokenStore()])
    listener = OffsetsListener("q", mirrored, on_failure=failures.append)
    listener.onQueryProgress(_Event(_Progress("q", 0, '{"t": {"0": 4}}')))
    assert listener.persisted_batch == 0 and listener.failures == 0
    assert failures == ["kafka-group"]
    assert FileStore(tmp_path).load().offsets == {"t": {0: 4}}
