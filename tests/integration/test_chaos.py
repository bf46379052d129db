"""The service killed with SIGKILL mid-stream, on both backends: nothing is lost, and
duplicates stay within the batches in flight at each kill.

The small form runs in the default suite; ``python -m bench.chaos`` is the large one.
"""

from __future__ import annotations

import pytest

from bench.chaos import run_chaos
from tests.integration.models import event_records

pytestmark = pytest.mark.integration

KILLS = 3
PER_BATCH = 200


@pytest.mark.timeout(1200)
def test_sigkill_mid_stream_loses_nothing(
    kafka_bootstrap, fraud_classifier, tmp_path, kafka_backend, figures
):
    # A backlog the killed runs cannot drain (each is killed within a batch or two of its
    # first progress), so every kill lands with input remaining; the last run drains it.
    events = [
        *event_records(4000, seed=31, prefix="chaos"),
        *[(f"bad-{i}".encode(), b"{not json") for i in range(30)],
    ]
    report = run_chaos(
        bootstrap=kafka_bootstrap,
        model=(fraud_classifier.uri, fraud_classifier.tracking_uri),
        events=events,
        work=tmp_path,
        kills=KILLS,
        rate=1000.0,
        max_offsets_per_trigger=PER_BATCH,
        seed=7,
        backend=kafka_backend,
    )
    figures.append(
        f"chaos backend={kafka_backend} events={report.events} kills={len(report.kill_moments)} "
        f"lost={report.lost} duplicates={report.duplicates} bound={report.duplicate_bound} "
        f"lag_at_kills={report.lag_at_kills}"
    )
    assert len(report.lag_at_kills) == KILLS
    assert all(lag > 0 for lag in report.lag_at_kills), f"a kill found no input left: {report}"
    assert report.lost == 0, f"{report.lost} events have no output or dead letter"
    assert report.duplicates <= report.duplicate_bound, report
    assert report.final_exit_code == 0
