"""The UI tests' server harness: a stopped server takes its whole process tree with it, and a server that
dies or never answers fails fast with its log (no browser needed, so these run in the fast suite)."""

from __future__ import annotations

import os
import sys
import time

import pytest

from forge_pipeline_tests.ui_support import Server, base_env, free_port, running_server, wait_for_http


def _members(pgid: int) -> list[int]:
    pids = []
    for proc in os.listdir("/proc"):
        if proc.isdigit():
            try:
                fields = open(f"/proc/{proc}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(proc))
    return pids


def test_stop_ends_the_server_and_the_processes_it_spawned(tmp_path):
    # A parent that ignores SIGTERM and a grandchild: both must be gone after stop().
    script = (
        "import signal, subprocess, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "subprocess.Popen(['sleep', '300']); print('up', flush=True); time.sleep(300)"
    )
    server = Server(
        "sleeper", [sys.executable, "-c", script], env=base_env(), cwd=tmp_path, log_path=tmp_path / "sleeper.log"
    )
    deadline = time.monotonic() + 20
    while len(_members(server.pgid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(_members(server.pgid)) == 2
    started = time.monotonic()
    server.stop(grace_s=1.0)
    assert _members(server.pgid) == []
    assert server.process.returncode is not None
    assert time.monotonic() - started < 10


def test_running_server_reports_a_server_that_exits_before_answering(tmp_path):
    port = free_port()
    command = [sys.executable, "-c", "import sys; print('cannot bind: config missing'); sys.exit(3)"]
    with pytest.raises(RuntimeError, match=r"(?s)exited with 3.*cannot bind: config missing"):
        with running_server(
            "broken",
            command,
            env=base_env(),
            cwd=tmp_path,
            log_path=tmp_path / "broken.log",
            ready_url=f"http://127.0.0.1:{port}/",
            timeout_s=20,
        ):
            pass


def test_wait_for_http_times_out_with_the_url(tmp_path):
    port = free_port()
    with pytest.raises(TimeoutError, match=rf"127\.0\.0\.1:{port}/health did not answer 200 within 1 s"):
        wait_for_http(f"http://127.0.0.1:{port}/health", timeout_s=1)


def test_running_server_yields_once_the_server_answers_and_stops_it_after(tmp_path):
    port = free_port()
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    with running_server(
        "http.server",
        command,
        env=base_env(),
        cwd=tmp_path,
        log_path=tmp_path / "http.log",
        ready_url=f"http://127.0.0.1:{port}/",
        timeout_s=30,
    ) as server:
        pgid = server.pgid
        assert _members(pgid)
    assert _members(pgid) == []
