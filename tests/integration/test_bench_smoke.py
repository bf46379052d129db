"""The throughput bench in its tiny mode: every system drains the same topic, reports a
positive rate, and its output topic holds every event once. No timing assertions."""

from __future__ import annotations

import pytest

from bench import throughput

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 20_000


@pytest.mark.timeout(1200)
def test_tiny_throughput_run(kafka_bootstrap, tmp_path):
    results = tmp_path / "RESULTS.md"
    args = throughput.parse_args(
        [
            "--events",
            str(EVENTS),
            "--quick",
            "--work-dir",
            str(tmp_path / "work"),
            "--results",
            str(results),
            "--bootstrap-servers",
            kafka_bootstrap,
        ]
    )
    report = throughput.run(args, "pytest tests/integration/test_bench_smoke.py")

    by_system = report["results"]
    for system in throughput.SYSTEMS:
        assert "error" not in by_system[system], (system, by_system[system].get("error"))
        rate = throughput._rate(system, by_system[system])
        assert rate is not None and rate > 0, (system, rate)
    for system in ("streamer", "recipe", "ceiling"):
        output = by_system[system]["output"]
        assert output["records"] == EVENTS, (system, output)
        assert output["distinct_keys"] == EVENTS, (system, output)
    assert by_system["streamer"]["dead_letters"] == 0
    assert report["checked"]

    text = results.read_text()
    assert "<!-- throughput:start -->" in text and "<!-- throughput:end -->" in text
    assert "a/c = " in text and "a/b = " in text
    assert (tmp_path / "throughput.png").stat().st_size > 0
