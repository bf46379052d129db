"""``python -m bench.checkpoint_cost --quick`` runs end to end and reports every location.

The full benchmark (issue 8) rewrites the checkpoint section of ``bench/RESULTS.md``; here
``--results`` points at a temp file so the suite never touches it. No timing is asserted:
only that each location produced measured batches with the phases the report is built on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LOCATIONS = ("tmp", "tmpfs", "durable")


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

    assert set(report["locations"]) == set(LOCATIONS)
    assert set(report["workloads"]) == {"trickle", "bulk"}
    for workload, per_location in report["workloads"].items():
        assert set(per_location) == set(LOCATIONS), workload
        for name, summary in per_location.items():
            assert summary["batches"] > 0, (workload, name)
            assert summary["rows_median"] > 0, (workload, name)
            for phase in ("walCommit", "commitOffsets", "checkpoint", "triggerExecution"):
                assert summary[phase]["median"] >= 0, (workload, name, phase)
                assert summary[phase]["p90"] >= summary[phase]["median"], (workload, name, phase)
            files = summary["checkpoint_files"]
            assert files["offsets"] >= summary["batches"] and files["commits"] >= 1, files

    text = results.read_text()
    assert text.count("<!-- checkpoint:start -->") == 1
    assert text.count("<!-- checkpoint:end -->") == 1
    assert "<!-- other:start -->\nkept\n<!-- other:end -->" in text, "other sections kept"
    section = text[text.index("<!-- checkpoint:start -->") :]
    for name in LOCATIONS:
        assert f"| {name} |" in section
    assert "Conclusion:" in section and "Command: `python -m bench.checkpoint_cost" in section
