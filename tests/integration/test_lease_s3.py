"""The handoff lease on S3 (moto in server mode, over HTTP): conditional PUTs fence it."""

from __future__ import annotations

import uuid

import pytest

from streamer.errors import DeployError
from streamer.handoff.lease import RUNNING, Lease, LeaseConflict, LeaseHolder, S3LeaseStore

pytestmark = pytest.mark.integration


@pytest.fixture
def s3_lease(s3_server):
    bucket = f"lease-{uuid.uuid4().hex[:8]}"
    s3_server.client().create_bucket(Bucket=bucket)
    return S3LeaseStore(f"s3://{bucket}/app/offsets", s3_server.client_kwargs())


def test_s3_lease_writes_are_conditional(s3_lease):
    assert s3_lease.read() == (None, None)
    first = Lease(owner="blue", epoch=1, state=RUNNING, instance="a")
    token = s3_lease.write(first, None)
    with pytest.raises(LeaseConflict):
        s3_lease.write(first, None)  # If-None-Match: * on an existing key
    newer = s3_lease.write(Lease(owner="green", epoch=2, state=RUNNING, instance="b"), token)
    with pytest.raises(LeaseConflict):
        s3_lease.write(first, token)  # If-Match on a superseded ETag
    lease, now = s3_lease.read()
    assert (lease.owner, lease.epoch, now) == ("green", 2, newer)
    assert s3_lease.key == "app/offsets/lease.json"


def test_s3_lease_takeover_of_a_stale_owner(s3_lease):
    blue = LeaseHolder(s3_lease, "blue", "b1", lease_timeout=0.5, heartbeat=0.1, poll=0.05)
    blue.acquire(takeover=False, drain_timeout=1)
    with pytest.raises(DeployError, match="held by blue"):
        LeaseHolder(s3_lease, "green", "g0", lease_timeout=0.5, heartbeat=0.1).acquire(
            takeover=False, drain_timeout=1
        )
    green = LeaseHolder(s3_lease, "green", "g1", lease_timeout=0.5, heartbeat=0.1, poll=0.05)
    acquired = green.acquire(takeover=True, drain_timeout=10)
    assert (acquired.how, acquired.previous.owner) == ("stale", "blue")
    assert blue.release(None, None) is False
    lease, _ = s3_lease.read()
    assert (lease.owner, lease.epoch, lease.instance) == ("green", 2, "g1")
