"""Helpers for the UI tests: free loopback ports, servers started in their own process group and stopped by
that group's id, HTTP readiness waits, Dagster GraphQL calls and a headless Chromium page."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from forge_pipeline.settings import DAGSTER_YAML

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
CHROMIUM = Path(os.environ.get("FORGE_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS_DIR = REPO_ROOT / "docs" / "screenshots"


def free_port() -> int:
    """A port the kernel says is free on 127.0.0.1 (there is a small race until the server binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A child process in a new session, so that stopping it also stops what it spawned (`dagster dev`
    starts a webserver, a daemon and code servers)."""

    def __init__(self, name: str, command: list[str], *, env: dict[str, str], cwd: Path, log_path: Path):
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.pgid = self.process.pid  # start_new_session makes the child its own group leader

    def log_tail(self, chars: int = 4000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM to the whole group, SIGKILL to whatever is left after `grace_s`."""
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, sig)
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                self.process.poll()
                if not _group_alive(self.pgid):
                    break
                time.sleep(0.2)
            else:
                continue
            break
        self.process.poll()
        self._log.close()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # Zombies of our own child count as gone once reaped; other members are checked via /proc.
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@contextlib.contextmanager
def running_server(
    name: str, command: list[str], *, env: dict[str, str], cwd: Path, log_path: Path, ready_url: str, timeout_s: float
) -> Iterator[Server]:
    """Starts the server, waits until `ready_url` answers 200, and always stops it by process group."""
    server = Server(name, command, env=env, cwd=cwd, log_path=log_path)
    try:
        wait_for_http(ready_url, timeout_s=timeout_s, server=server)
        yield server
    finally:
        server.stop()


def wait_for_http(url: str, *, timeout_s: float, server: Server | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if server is not None and not server.alive():
            raise RuntimeError(
                f"{server.name} exited with {server.process.returncode} before {url} answered; "
                f"log {server.log_path}:\n{server.log_tail()}"
            )
        try:
            response = httpx.get(url, timeout=5.0)
            if response.status_code == 200:
                return
            last_error = f"HTTP {response.status_code}"
        except httpx.HTTPError as error:
            last_error = repr(error)
        time.sleep(0.5)
    tail = f"; log {server.log_path}:\n{server.log_tail()}" if server else ""
    raise TimeoutError(f"{url} did not answer 200 within {timeout_s:.0f} s ({last_error}){tail}")


def wait_until(condition: Callable[[], Any], *, timeout_s: float, interval_s: float = 2.0, what: str) -> Any:
    """Polls `condition` until it returns something truthy; the TimeoutError says what was awaited."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def base_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def dagster_home(tmp_path: Path) -> Path:
    """A fresh DAGSTER_HOME with Forge's dagster.yaml (queued runs, run monitoring, SQLite storage)."""
    home = tmp_path / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(DAGSTER_YAML, home / "dagster.yaml")
    return home


@contextlib.contextmanager
def dagster_dev(
    tmp_path: Path,
    *,
    data_root: Path,
    workspace: Path | None = None,
    module: str | None = None,
    cwd: Path = REPO_ROOT,
    extra_env: dict[str, str] | None = None,
    timeout_s: float = 240,
) -> Iterator[str]:
    """`dagster dev` (webserver + daemon) on a free loopback port; yields the base URL once the code
    location has loaded."""
    port = free_port()
    home = dagster_home(tmp_path)
    target = ["-m", module] if module else ["-w", str(workspace or REPO_ROOT / "workspace.yaml")]
    env = base_env(DAGSTER_HOME=str(home), FORGE_DATA_ROOT=str(data_root), **(extra_env or {}))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(cwd), str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    command = [str(VENV_BIN / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port), *target]
    url = f"http://127.0.0.1:{port}"
    with running_server(
        "dagster dev",
        command,
        env=env,
        cwd=cwd,
        log_path=tmp_path / "dagster_dev.log",
        ready_url=f"{url}/server_info",
        timeout_s=timeout_s,
    ) as server:
        wait_until(
            lambda: _location_loaded(url, server),
            timeout_s=timeout_s,
            interval_s=1.0,
            what=f"the Dagster code location to load (log {server.log_path})",
        )
        yield url


def _location_loaded(url: str, server: Server) -> bool:
    data = graphql(
        url,
        """{ workspaceOrError { ... on Workspace { locationEntries {
        name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }""",
    )
    entries = data["workspaceOrError"]["locationEntries"]
    for entry in entries:
        error = entry["locationOrLoadError"]
        if error and error["__typename"] == "PythonError":
            raise RuntimeError(f"code location {entry['name']} failed to load: {error['message']}\n{server.log_tail()}")
    return bool(entries) and all(e["loadStatus"] == "LOADED" and e["locationOrLoadError"] for e in entries)


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    response = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30.0)
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors from {url}: {body['errors']}")
    return body["data"]


def dagster_runs(url: str) -> list[dict]:
    data = graphql(
        url,
        """{ runsOrError(limit: 50) { ... on Runs { results {
        runId status jobName tags { key value } } } } }""",
    )
    return data["runsOrError"]["results"]


@contextlib.contextmanager
def chromium_page(viewport: tuple[int, int] = (1600, 1000)):
    """A headless Chromium page through Playwright, on Debian's chromium (Playwright's download needs the
    internet). --no-sandbox because tests run as root in containers."""
    # CI sets FORGE_REQUIRE_UI=1 after installing the browser: there a missing browser is a failure, not a
    # silent skip. Elsewhere (a laptop without apt) the UI tests skip with the command that fixes it.
    missing = pytest.fail if os.environ.get("FORGE_REQUIRE_UI") == "1" else pytest.skip
    try:
        from playwright import sync_api
    except ImportError:
        missing("playwright missing: run scripts/install_ui_deps.sh")
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} missing: run scripts/install_ui_deps.sh")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def save_screenshot(page, tmp_path: Path, name: str, *, readme_name: str | None = None) -> Path:
    """Saves under the test's tmp dir; with FORGE_UPDATE_SCREENSHOTS=1 also copies to docs/screenshots."""
    path = tmp_path / "screenshots" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=False)
    if readme_name and os.environ.get("FORGE_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SCREENSHOTS_DIR / readme_name)
    return path
