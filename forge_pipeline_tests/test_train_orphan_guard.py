"""A training subprocess must not outlive the process that launched it (e.g. `forge demo` killed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

CHILD = textwrap.dedent(
    """
    import sys, time
    from forge_pipeline.train.orphan_guard import exit_with_parent
    exit_with_parent(poll_s=0.1)
    print("watching", flush=True)
    time.sleep(120)
    """
)
# The launcher starts the child, prints its pid and waits; the test kills the launcher with SIGKILL, so nothing
# in the launcher can stop the child.
LAUNCHER = textwrap.dedent(
    f"""
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", {CHILD!r}], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "watching"
    print(child.pid, flush=True)
    time.sleep(120)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_training_child_exits_when_its_launcher_is_killed():
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE, text=True)
    child_pid = None
    try:
        child_pid = int(launcher.stdout.readline())
        assert _alive(child_pid)
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(timeout=10)
        deadline = time.monotonic() + 60  # a bound, not a timing: the watcher polls every 0.1 s
        while _alive(child_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child_pid), "the training child kept running after its launcher died"
    finally:
        launcher.kill()
        if child_pid is not None and _alive(child_pid):
            os.kill(child_pid, signal.SIGKILL)
