"""Work dirs left by killed runs are swept; a live or foreign run's dir never is."""

import os
import socket
import subprocess
import sys

from streamer.service import OWNER_FILE, sweep_dead_work_dirs


def _work_dir(parent, name, owner=None):
    path = parent / name
    (path / "checkpoint").mkdir(parents=True)
    if owner is not None:
        (path / OWNER_FILE).write_text(owner)
    return path


def test_only_dirs_of_dead_processes_on_this_host_are_removed(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)
    host = socket.gethostname()
    killed = _work_dir(tmp_path, "streamer-killed", f"{host} {dead_pid}\n")
    live = _work_dir(tmp_path, "streamer-live", f"{host} {os.getpid()}\n")
    foreign = _work_dir(tmp_path, "streamer-other-pod", f"not-{host} {dead_pid}\n")
    legacy = _work_dir(tmp_path, "streamer-no-owner")
    unrelated = _work_dir(tmp_path, "checkpoint-x", f"{host} {dead_pid}\n")

    removed = sweep_dead_work_dirs(str(tmp_path))

    assert removed == [str(killed)]
    assert not killed.exists()
    assert all(p.exists() for p in (live, foreign, legacy, unrelated))
