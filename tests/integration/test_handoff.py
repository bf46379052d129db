"""Blue-green handoff between two real ``streamer run`` processes while events flow.

Small forms of ``python -m bench.handoff``: one takeover of a live owner (zero lost, zero
duplicated, on both backends), and one takeover of a SIGKILLed owner after the lease
timeout (zero lost; duplicates bounded by the batches in flight at the kill). The python
backend's pair holds its lease and offsets on an S3 server.
"""

from __future__ import annotations

import uuid

import pytest

from bench.handoff import run_switches

pytestmark = pytest.mark.integration

MAX_OFFSETS = 200
RATE = 50.0  # events/s, well under what one local[2] service drains on a busy 2-core box


def _run(
    kafka_bootstrap, fraud_classifier, tmp_path, kind: str, backend: str, figures, **offsets
):
    report = run_switches(
        bootstrap=kafka_bootstrap,
        model=(fraud_classifier.uri, fraud_classifier.tracking_uri),
        work=tmp_path,
        switches=[kind],
        rate=RATE,
        max_offsets_per_trigger=MAX_OFFSETS,
        lease_timeout=6.0,
        heartbeat=0.5,
        settle=2.0,
        backend=backend,
        **offsets,
    )
    switch = report.switches[0]
    figures.append(
        f"{kind} backend={backend}: events={report.events} lost={report.lost} duplicates={report.duplicates} "
        f"gap_seconds={switch.gap_seconds} reported_gap_seconds={switch.reported_gap_seconds} "
        f"old_exit={switch.old_exit_code}"
    )
    assert report.events > 0
    assert report.lost == 0, f"{report.lost} events have no output or dead letter"
    assert report.final_exit_code == 0
    assert switch.gap_seconds is not None, "no outputs on one side of the switch"
    return report, switch


@pytest.mark.timeout(1200)
def test_takeover_of_a_live_owner_loses_and_duplicates_nothing(
    kafka_bootstrap, fraud_classifier, tmp_path, kafka_backend, figures, s3_server
):
    """On the python backend blue and green keep their offsets and the lease as objects on a
    local S3 server (moto's server mode, over HTTP), as on EMR; on jvm, in a local folder."""
    offsets = {}
    if kafka_backend == "python":
        bucket = f"handoff-{uuid.uuid4().hex[:8]}"
        s3_server.client().create_bucket(Bucket=bucket)
        offsets["offsets"] = {
            "store": "s3",
            "path": f"s3://{bucket}/streamer",
            "s3_client": s3_server.client_kwargs(),
        }
    report, switch = _run(
        kafka_bootstrap, fraud_classifier, tmp_path, "handoff", kafka_backend, figures, **offsets
    )
    assert (switch.before, switch.after) == ("blue", "green")
    assert switch.old_exit_code == 0, "blue must drain, release and exit 0"
    assert report.duplicates == 0
    assert switch.boundary, "blue released no offsets"
    if offsets:
        listed = s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
        assert "streamer/lease.json" in [o["Key"] for o in listed]


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("kafka_backend", ["jvm"])
def test_sigkilled_owner_is_taken_over_after_the_lease_timeout(
    kafka_bootstrap, fraud_classifier, tmp_path, kafka_backend, figures
):
    """On the jvm backend only in the default run: a SIGKILLed owner is the chaos case, which
    test_chaos.py covers on both backends; this adds the lease timeout."""
    report, switch = _run(kafka_bootstrap, fraud_classifier, tmp_path, "kill", kafka_backend, figures)
    assert switch.old_exit_code == -9
    # the batch being written at the kill, and one whose progress was not yet persisted
    assert report.duplicates <= 2 * MAX_OFFSETS
