"""The demo's live view, rendered to text."""

from __future__ import annotations

import io

from rich.console import Console

from streamer.tools.live import LiveView, Snapshot, Status, render

STATUS = Status(produced=5000, input_per_s=812.0, batch_seconds=0.64, lag=120, batches=9)
SNAP = Snapshot(
    scored=4800,
    dead_letters=50,
    scored_per_s=790.0,
    alerts_per_s=3.5,
    e2e_p50_ms=640.0,
    e2e_p99_ms=1310.0,
    flagged=[
        {
            "key": "demo-1-17",
            "prediction": {"0": 0.03, "1": 0.97},
            "label": True,
            "model": {"name": "fraud-detector", "version": "1"},
            "source": {"topic": "transactions", "partition": 2, "offset": 77, "timestamp": 1000},
            "scored_at": 1640,
        }
    ],
)


def test_panel_shows_every_figure_and_the_flagged_transaction():
    console = Console(file=io.StringIO(), width=120, record=True)
    console.print(render(STATUS, SNAP))
    text = console.export_text()
    for expected in (
        "input/s",
        "812",
        "scored/s",
        "790",
        "e2e p50",
        "640 ms",
        "e2e p99",
        "1,310 ms",
        "batch latency",
        "lag",
        "120",
        "fraud alerts/s",
        "3.5",
        "last flagged transactions",
        "demo-1-17",
        "0.970",
        "fraud-detector v1",
        "2/77",
    ):
        assert expected in text, expected


def test_plain_mode_prints_one_progress_line():
    out = io.StringIO()
    with LiveView(out, interactive=False) as view:
        view.update(STATUS, SNAP)
        view.update(STATUS, SNAP)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert "scored=4800" in lines[0] and "e2e_p99=1,310 ms" in lines[0] and "lag=120" in lines[0]
