"""The real `forge serve` process for the serving tests: one uvicorn subprocess on the tiny GGUF base with
two real LoRA adapters (v0001, v0002), started once per test session and shared by the modules that drive it
over HTTP (test_serve_server.py, test_serve_openai_sdk.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from forge_pipeline_tests.ui_support import free_port

REPO = Path(__file__).resolve().parents[1]
MAX_BYTES = 50_000
DAGSTER_LOCATION = "serve_test_location"  # forge_pipeline_tests/serve_dagster_location.py


def wait_healthy(client: httpx.Client, process: subprocess.Popen, log_path: Path, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            if client.get("/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"server did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.3)


def stop(process: subprocess.Popen, within_s: float = 20) -> float:
    """SIGTERM, then the seconds it took to exit; SIGKILL and fail when it takes longer than `within_s`."""
    started = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=within_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        raise AssertionError(f"server did not shut down within {within_s} s of SIGTERM") from None
    return time.perf_counter() - started


def start_server(root: Path, extra_env: dict[str, str] | None = None, cli: bool = False):
    """(process, client, port, log path) of a server on `root`'s manifest. `cli=True` runs `forge serve`."""
    port = free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "FORGE_DATA_ROOT": str(root),
        "FORGE_SERVE__N_CTX": "512",
        "FORGE_SERVE__MANIFEST_POLL_S": "0.2",
        "FORGE_SERVE__MAX_REQUEST_BYTES": str(MAX_BYTES),
        **(extra_env or {}),
    }
    log_path = root / f"server-{port}.log"
    log = open(log_path, "wb")
    command = (
        [sys.executable, "-m", "forge_pipeline.cli", "serve", "--port", str(port)]
        if cli
        else [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "forge_pipeline.serve.app:app_from_env",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--timeout-graceful-shutdown",
            "5",
        ]
    )
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        wait_healthy(client, process, log_path)
    except Exception:
        client.close()
        process.kill()
        process.wait(timeout=10)
        raise
    return process, client, port, log_path


def hang_up_before_first_byte(port: int, body: bytes, path: str = "/v1/chat/completions") -> None:
    """Send a whole request, then reset the connection at once: the client is gone before any response byte."""
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
    sock.sendall(request)
    sock.close()


@contextlib.contextmanager
def dagster_webserver(home: Path):
    """A real dagster-webserver (loopback, DAGSTER_HOME=`home`) on serve_dagster_location.py: the serve stage's
    real jobs over two cheap stand-in assets. Yields its URL."""
    # Runs start at once in a subprocess (no daemon needed to dequeue them).
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
        "telemetry:\n  enabled: false\n"
    )
    (home / "workspace.yaml").write_text(
        f"load_from:\n  - python_module:\n      module_name: forge_pipeline_tests.serve_dagster_location\n"
        f"      location_name: {DAGSTER_LOCATION}\n"
    )
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    log = open(home / "webserver.log", "wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster_webserver",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            str(home / "workspace.yaml"),
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError((home / "webserver.log").read_text()[-3000:])
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
