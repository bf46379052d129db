"""The document store: compare-and-swap on a local file and on S3 (moto, in process)."""

from __future__ import annotations

import os
import threading

import pytest

from streamer.docstore import (
    DocumentError,
    FileDocument,
    open_document,
    open_folder,
    s3_client,
    split_s3_url,
)


def test_file_swap_creates_updates_and_refuses_a_stale_version(tmp_path):
    doc = FileDocument(tmp_path / "state" / "doc.json")
    assert doc.read() is None
    first = doc.swap(b"1", None)
    assert first is not None and doc.swap(b"x", None) is None  # exists already
    second = doc.swap(b"2", first)
    assert second is not None and doc.swap(b"x", first) is None  # superseded
    assert doc.read() == (b"2", second)
    assert os.listdir(tmp_path / "state") == ["doc.json"], "no lock or temp file left behind"


def test_file_swaps_never_lose_an_update(tmp_path):
    doc = FileDocument(tmp_path / "n.json", lock=tmp_path / ".n.lock")
    doc.swap(b"0", None)
    wins = []

    def bump() -> None:
        for _ in range(50):
            data, version = doc.read() or (b"", None)
            if doc.swap(str(int(data) + 1).encode(), version):
                wins.append(1)

    threads = [threading.Thread(target=bump) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert int(doc.read()[0]) == len(wins)


def test_a_failed_put_keeps_the_old_document_and_names_it(tmp_path, monkeypatch):
    doc = FileDocument(tmp_path / "doc.json")
    doc.put(b"old")

    def crash(*_args):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(DocumentError, match=r"cannot write file:.*doc\.json: disk gone"):
        doc.put(b"new")
    monkeypatch.undo()
    assert doc.read()[0] == b"old" and os.listdir(tmp_path) == ["doc.json"]


def test_folder_lists_reads_and_deletes(tmp_path):
    folder = open_folder(str(tmp_path / "missing"))
    assert folder.names("a") == []
    folder.document("a-1").put(b"x")
    folder.document("b-1").put(b"y")
    assert folder.names("a") == ["a-1"]
    folder.document("a-1").delete()
    assert folder.names("") == ["b-1"]


def test_urls():
    assert split_s3_url("s3a://bucket/a/b/") == ("bucket", "a/b")
    assert split_s3_url("/local/path") is None
    with pytest.raises(DocumentError, match="names a bucket"):
        open_document("s3://bucket")


def test_s3_swap_is_a_conditional_put():
    moto = pytest.importorskip("moto")
    client = {"region_name": "us-east-1", "aws_access_key_id": "t", "aws_secret_access_key": "t"}
    with moto.mock_aws():
        s3_client(client).create_bucket(Bucket="docs-bucket")
        folder = open_folder("s3://docs-bucket/app", client)
        doc = folder.document("doc.json")
        assert doc.read() is None
        first = doc.swap(b"1", None)
        assert first is not None and doc.swap(b"x", None) is None  # If-None-Match: *
        second = doc.swap(b"2", first)
        assert second is not None and doc.swap(b"x", first) is None  # If-Match, superseded
        assert doc.read() == (b"2", second)
        assert folder.names("doc") == ["doc.json"]
        doc.delete()
        assert doc.swap(b"x", second) is None  # If-Match on a deleted object
