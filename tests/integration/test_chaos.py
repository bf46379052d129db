"""The service killed with SIGKILL at random moments while events flow: nothing is lost,
and duplicates stay within the batches in flight at each kill.

The small form runs in the default suite; ``python -m bench.chaos`` is the large one.
"""

from __future__ import annotations

import pytest

from bench.chaos import run_chaos
from tests.integration.models import event_records

pytestmark = pytest.mark.integration

KILLS = 5


def test_sigkill_five_times_loses_nothing(kafka_bootstrap, fraud_classifier, tmp_path):
    events = [
        *event_records(3000, seed=31, prefix="chaos"),
        *[(f"bad-{i}".encode(), b"{not json") for i in range(30)],
    ]
    report = run_chaos(
        bootstrap=kafka_bootstrap,
        model=(fraud_classifier.uri, fraud_classifier.tracking_uri),
        events=events,
        work=tmp_path,
        kills=KILLS,
        rate=25.0,
        max_offsets_per_trigger=100,
        seed=7,
    )
    print(
        f"chaos events={report.events} kills={report.kills} lost={report.lost} "
        f"duplicates={report.duplicates} moments={report.kill_moments}"
    )
    assert report.kills == KILLS
    assert report.lost == 0, f"{report.lost} events have no output or dead letter"
    assert report.duplicates <= report.duplicate_bound, report
    assert report.final_exit_code == 0
