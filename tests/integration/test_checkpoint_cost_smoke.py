"""``python -m bench.checkpoint_cost --quick`` runs end to end and reports every location.

The full benchmark (issue 8) rewrites the checkpoint section of ``bench/RESULTS.md``; here
``--results`` points at a temp file so the suite never touches it. No timing is asserted:
only that each location measured the batches asked for, that every summary figure is the
median / p90 of those batches' own durations (finite and positive), and that the section
written shows those figures.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LOCATIONS = ("tmp", "tmpfs", "durable")
PHASES = ("walCommit", "commitOffsets", "checkpoint", "addBatch", "triggerExecution")


def _seconds(batch: dict, phase: str) -> float:
    ms = batch["durationMs"]
    if phase == "checkpoint":
        return (ms["walCommit"] + ms["commitOffsets"]) / 1000.0
    return ms[phase] / 1000.0


def _row(section: str, workload: str, name: str) -> str:
    """The line of ``name`` in the table under the ``workload`` heading."""
    table = section.split(f"**{workload}**", 1)[1].split("\n\n", 2)[1]
    (line,) = [line for line in table.splitlines() if line.startswith(f"| {name} |")]
    return line


def test_quick_mode_reports_all_three_locations(kafka_bootstrap, tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n<!-- other:start -->\nkept\n<!-- other:end -->\n")
    report_path = tmp_path / "report.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.checkpoint_cost",
            "--quick",
            "--bootstrap-servers",
            kafka_bootstrap,
            "--work-dir",
            str(tmp_path / "work"),
            "--results",
            str(results),
            "--json",
            str(report_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(report_path.read_text())

    settings = report["settings"]
    assert (settings["skip"], settings["batches"], settings["wanted"]) == (3, 3, 6), settings
    assert set(report["locations"]) == set(LOCATIONS)
    assert set(report["workloads"]) == {"trickle", "bulk"}
    text = results.read_text()
    assert text.count("<!-- checkpoint:start -->") == 1
    assert text.count("<!-- checkpoint:end -->") == 1
    assert "<!-- other:start -->\nkept\n<!-- other:end -->" in text, "other sections kept"
    section = text[text.index("<!-- checkpoint:start -->") : text.index("<!-- checkpoint:end -->")]
    for workload, per_location in report["workloads"].items():
        assert set(per_location) == set(LOCATIONS), workload
        for name, summary in per_location.items():
            where = (workload, name)
            measured = report["batches"][f"{workload}/{name}"]
            assert len(measured) == settings["wanted"], where
            ids = [b["batchId"] for b in measured]
            assert ids == sorted(set(ids)), (where, ids)
            kept = measured[settings["skip"] :]
            assert summary["batches"] == len(kept) == settings["batches"], where
            assert summary["rows_median"] == statistics.median(b["numInputRows"] for b in kept)
            assert summary["rows_median"] > 0, where
            for phase in PHASES:
                seconds = [_seconds(b, phase) for b in kept]
                figures = summary[phase]
                assert all(math.isfinite(v) for v in figures.values()), (where, phase, figures)
                assert figures["median"] == statistics.median(seconds), (where, phase, seconds)
                assert 0 < figures["median"] <= figures["p90"] <= max(seconds), (where, phase)
            files = summary["checkpoint_files"]
            assert min(files["offsets"], files["commits"]) >= settings["wanted"], (where, files)
            row = _row(section, workload, name)
            assert row.startswith(f"| {name} | {len(kept)} | {summary['rows_median']:.0f} |"), row
            checkpoint = summary["checkpoint"]
            assert f"**{checkpoint['median']:.3f} / {checkpoint['p90']:.3f}**" in row, row
    for name, location in report["locations"].items():
        assert f"| {name} | `{location['path']}` | {location['filesystem']}" in section
    assert "Conclusion:" in section and "Command: `python -m bench.checkpoint_cost" in section
