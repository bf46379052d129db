"""``streamer demo`` as a newcomer runs it: a subprocess in a pseudo-terminal, embedded
broker, local registry, loopback only. The live view must render, and the summary must
account for every event."""

from __future__ import annotations

import os
import re
import sys

import pytest

pytestmark = pytest.mark.integration

pexpect = pytest.importorskip("pexpect")

SUMMARY = re.compile(
    rb"summary produced=(\d+) scored=(\d+) dead_letters=(\d+) lost=(\d+) duplicates=(\d+)"
)


def test_demo_in_a_terminal_shows_the_live_view_and_accounts_for_everything(tmp_path):
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("STREAMER_", "KAFKA_", "MLFLOW_"))
    }
    child = pexpect.spawn(
        sys.executable,
        [
            "-m",
            "streamer.cli",
            "demo",
            "--rate",
            "300",
            "--bad-fraction",
            "0.03",
            "--work-dir",
            str(tmp_path),
        ],
        env=env,
        dimensions=(50, 140),
        timeout=600,
    )
    try:
        child.expect("streamer demo \\(Ctrl-C to stop\\)")
        child.expect("fraud alerts/s")
        child.expect("e2e p99")
        child.expect("last flagged transactions")
        child.expect(rb"scored / dead letters\S*\s+\S*[1-9][\d,]* / ")  # scoring under way
        child.sendintr()  # Ctrl-C: stop producing, drain, summarise
        child.expect("stopping; draining what was produced")
        child.expect(rb"injected malformed=(\d+)")
        injected = int(child.match.group(1))
        child.expect(SUMMARY)
        produced, scored, dead, lost, duplicates = map(int, child.match.groups())
        child.expect(pexpect.EOF)
        after_summary = child.before.strip()
    finally:
        child.close()
    assert after_summary == b"", f"output after the summary line: {after_summary[:300]!r}"
    assert child.exitstatus == 0, child.before
    assert produced > 0
    assert scored > 0
    assert injected > 0 and dead == injected
    assert scored + dead == produced
    assert lost == 0 and duplicates == 0
