"""ModelHost, the engine side of the server: keeps the manifest's current version loaded, hot-swaps it, and
gives each request an engine of the version it asked for. It knows no HTTP: the routes (serve/*_routes.py,
serve/serving.py) hold it in `app.state` and call `resolve`, `session` and `health`. Which versions the
manifest has, and their verified files, are serve/versions.py's (`host.versions`), which the HTTP side reads
too (model listing, downloads) without touching an engine.

* A version is an immutable description (`VersionSpec`: base GGUF, adapter GGUF, manifest entry). A request
  takes one at its start (the one it named, or the serving one once it has an engine), checks an engine out
  of the base's pool and sets that version's adapter on it (serve/engine.py). Nothing changes an engine
  under a running request, so a request pinned to `v0001` is answered by `v0001` under any concurrency,
  while `current` moves and while the manifest is broken.
* Same base GGUF, new adapter: a swap is a pointer change (the new adapter is loaded once first, so a broken
  adapter fails here and not in a request); engines switch adapters per request (well under a millisecond,
  plus clearing the prompt cache and KV memory).
* New base GGUF: a new pool is loaded beside the old one (requests keep flowing to the old one meanwhile) and
  the pointer switches only once it is ready; the old pool closes after its last request ends.
* A manifest that is unreadable or names a missing/corrupt file (sha256 mismatch) is refused: the old version
  keeps serving and the error is kept for /health. Versions verified earlier stay selectable by name while the
  manifest cannot be read.
* A/B: when the manifest names a `candidate` with a traffic share, chat sessions opened with `ab=True` go to the
  candidate with that probability (serve.routing.TrafficRouter). A candidate on the same base is an adapter
  set per request on the shared pool; on another base it gets its own engine. A broken candidate is dropped
  (the error is in /health) and the current version keeps all traffic.
* Shutdown: `stopping_event` makes in-flight generations stop at their next token (the stopping criterion
  the routes pass to llama-cpp-python) and waiting requests give up with ShuttingDown.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from forge_pipeline.errors import ForgeError
from forge_pipeline.export.manifest import ManifestError, candidate_of
from forge_pipeline.serve.engine import EnginePool, PoolRetired, ShuttingDown, new_engine
from forge_pipeline.serve.routing import TrafficRouter
from forge_pipeline.serve.versions import ManifestVersions, UnknownVersionError, VersionSpec

log = logging.getLogger(__name__)
# `model` values that mean "whatever the server serves by default" (the current version, A/B included).
DEFAULT_MODEL_NAMES = ("forge", "current")
CLOSE_WAIT_S = 30.0

__all__ = ["DEFAULT_MODEL_NAMES", "ModelHost", "NoModelError", "Session", "ShuttingDown"]


class NoModelError(ForgeError, RuntimeError):
    """Nothing is loaded yet (no promoted version, or the first one was refused)."""


@dataclass(frozen=True, eq=False)
class _Served:
    """What the server serves by default: the version, its base's chat pool and the embedding engine."""

    spec: VersionSpec
    pool: EnginePool
    embed: EnginePool | None


@dataclass(eq=False)
class _Candidate:
    """The manifest's A/B candidate; `pool` is its own engine when it does not share the served base."""

    spec: VersionSpec
    share: float
    pool: EnginePool | None = None


@dataclass
class Session:
    """What a request gets: the engine it may use until the session ends, and the version it serves."""

    version: str
    llm: object
    route: str = "current"  # "current" | "candidate" (A/B) | "pinned" (the request named this version)


class ModelHost:
    def __init__(
        self,
        manifest_path: Path,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        embeddings: bool = True,
        seed: int = 0,
        router_seed: int | None = None,
        parallel: int = 1,
    ):
        self.manifest_path = Path(manifest_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.embeddings = embeddings
        self.seed = seed
        self.parallel = max(1, int(parallel))
        self._current: _Served | None = None
        self._candidate: _Candidate | None = None
        self.versions = ManifestVersions(self.manifest_path)  # the manifest's versions, verified
        self.candidate_error: str | None = None
        self.router = TrafficRouter(router_seed)
        self._reload_lock = threading.Lock()  # one reload at a time
        self.last_error: str | None = None
        self.swaps: list[dict] = []
        self.swap_counts: dict[str, int] = {}  # all swaps since start by kind (self.swaps keeps the last 200)
        self.refusals = 0  # manifests refused since start (the old version kept serving)
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._seen_manifest: tuple | None = None
        # Set when the server shuts down: generations stop at their next token (see `stopping`).
        self.stopping_event = threading.Event()

    # -- requests ---------------------------------------------------------------------------------
    @property
    def version(self) -> str | None:
        current = self._current
        return current.spec.version if current else None

    @property
    def entry(self) -> dict | None:
        current = self._current
        return current.spec.entry if current else None

    @property
    def candidate(self) -> dict | None:
        candidate = self._candidate
        return (
            None
            if candidate is None
            else {
                "version": candidate.spec.version,
                "traffic_share": candidate.share,
                "shared_base": candidate.pool is None,
            }
        )

    def known_versions(self) -> dict[str, dict]:
        """{version: manifest entry} of the versions verified since start that the served base can answer."""
        current = self._current
        if current is None:
            return {}
        return {
            v: s.entry
            for v, s in self.versions.known().items()
            if s.base_path == current.pool.base_path and (s.adapter_path is not None or v == current.spec.version)
        }

    def stopping(self, input_ids, logits) -> bool:
        """A llama-cpp-python stopping criterion: true once the server is shutting down, so an in-flight
        generation ends at its next token instead of running to max_tokens."""
        return self.stopping_event.is_set()

    def begin_shutdown(self) -> None:
        """Generations stop at their next token; requests waiting for an engine give up (ShuttingDown)."""
        self.stopping_event.set()

    def resolve(self, model: str | None) -> str | None:
        """The version a request's `model` names: None for the default (A/B-routed current version), else a
        version this server can answer with. Raises UnknownVersionError naming why not."""
        if model is None or model in DEFAULT_MODEL_NAMES:
            return None
        served = self._current
        if served is None:
            raise NoModelError(self.last_error or "no model version is promoted in the manifest yet")
        self._spec_for(model, served)
        return model

    def _spec_for(self, version: str, served: _Served) -> tuple[VersionSpec, str, EnginePool]:
        """(spec, route, pool) that answer a request naming `version`."""
        if version == served.spec.version:
            return served.spec, "current", served.pool
        candidate = self._candidate
        if candidate is not None and candidate.spec.version == version:
            if candidate.pool is not None:
                return candidate.spec, "candidate", candidate.pool
            if candidate.spec.base_path == served.pool.base_path:
                return candidate.spec, "candidate", served.pool
        spec = self.versions.pinned(version)
        if spec.adapter_path is None or spec.base_path != served.pool.base_path:
            raise UnknownVersionError(
                version,
                f"it is not an adapter on the served base {served.pool.base_path.name}; only "
                "versions that an adapter swap can serve are selectable",
            )
        return spec, "pinned", served.pool

    @contextlib.contextmanager
    def session(self, kind: str = "chat", ab: bool = False, version: str | None = None) -> Iterator[Session]:
        """The engine for one request. `ab=True` (chat requests) lets the router send it to the candidate;
        `version` (from `resolve`) pins the request to that version instead."""
        to_candidate = None  # drawn once per request, even if a base switch makes us look again
        spec: VersionSpec | None = None
        while True:
            served = self._current
            if served is None:
                raise NoModelError(self.last_error or "no model version is promoted in the manifest yet")
            if self.stopping_event.is_set():
                raise ShuttingDown("the server is shutting down")
            spec = None  # None: the serving version, read once an engine is ours
            route = "current"
            if kind == "embed":
                if served.embed is None:
                    raise NoModelError("embeddings are disabled on this server")
                pool = served.embed
            elif version is not None:
                spec, route, pool = self._spec_for(version, served)
            else:
                pool = served.pool
                candidate = self._candidate if ab else None
                if candidate is not None and to_candidate is None:
                    to_candidate = self.router.to_candidate(candidate.share)
                if candidate is not None and to_candidate:
                    if candidate.pool is not None:
                        spec, route, pool = candidate.spec, "candidate", candidate.pool
                    elif candidate.spec.base_path == served.pool.base_path:
                        spec, route = candidate.spec, "candidate"
            wanted = spec.adapter_path if spec is not None else served.spec.adapter_path
            try:
                engine = pool.checkout(str(wanted) if wanted else None, self.stopping_event.is_set)
            except PoolRetired:
                continue  # the base was replaced while we waited: look again
            break
        try:
            if spec is None:
                now = self._current  # the newest version on this pool answers
                spec = now.spec if now is not None and pool in (now.pool, now.embed) else served.spec
            engine.set_adapter(spec.adapter_path)
            yield Session(spec.version, engine.llm, route)
        finally:
            pool.checkin(engine)

    # -- loading ------------------------------------------------------------------------------------
    def _new_pool(self, base_path: Path, size: int, adapter_path: Path | None, embedding: bool = False) -> EnginePool:
        engines = []
        try:
            for _ in range(size):
                engines.append(new_engine(base_path, self.n_ctx, self.n_threads, self.seed, embedding=embedding))
                engines[-1].set_adapter(adapter_path)  # a broken adapter fails here, not in a request
        except Exception:
            for engine in engines:
                engine.close()
            raise
        return EnginePool(base_path, engines)

    def _preload_adapter(self, pool: EnginePool, adapter_path: Path | None) -> float:
        """Load `adapter_path` on one engine of `pool` if none has it yet (so a broken adapter is refused by
        the reload); returns the milliseconds waited for a free engine."""
        if adapter_path is None or any(str(adapter_path) in e.adapters for e in pool.engines):
            return 0.0
        started = time.perf_counter()
        engine = pool.checkout(None, self.stopping_event.is_set)
        waited = (time.perf_counter() - started) * 1000
        try:
            engine.load_adapter(adapter_path)
        finally:
            pool.checkin(engine)
        return waited

    def reload(self) -> dict:
        """Load the manifest's current version if it differs from what is served. Never raises for a bad
        manifest: the error is recorded and returned, and the old version keeps serving."""
        with self._reload_lock:
            try:
                return self._reload()
            except Exception as err:  # any failure must leave the old model serving
                self.refusals += 1
                self.last_error = f"{type(err).__name__}: {err}"
                log.error("manifest refused, still serving %s: %s", self.version, self.last_error)
                return {"changed": False, "version": self.version, "error": self.last_error}

    def _reload(self) -> dict:
        manifest = self.versions.read()
        result = self._reload_current(manifest)
        result["candidate"] = self._sync_candidate(manifest)
        return result

    def _sync_candidate(self, manifest: dict) -> dict | None:
        """Load, update or drop the A/B candidate. A bad candidate never affects the current version."""
        wanted, share = None, 0.0
        try:
            spec = candidate_of(manifest, self.manifest_path)
            if spec is not None and spec["version"] != self.version:
                wanted, share = self.versions.spec_of(manifest, spec["version"]), spec["traffic_share"]
            self.candidate_error = None
        except Exception as err:  # the current version keeps all traffic
            self.candidate_error = f"{type(err).__name__}: {err}"
            log.error("A/B candidate refused: %s", self.candidate_error)
        old, current = self._candidate, self._current
        fresh = None
        if wanted is not None:
            shares_base = (
                current is not None and wanted.adapter_path is not None and wanted.base_path == current.pool.base_path
            )
            if old is not None and wanted.same_files(old.spec) and (old.pool is None) == shares_base:
                old.share = share  # only the share changed
                return self.candidate
            fresh = _Candidate(wanted, share)
            try:
                if shares_base and current is not None:
                    self._preload_adapter(current.pool, wanted.adapter_path)
                else:
                    fresh.pool = self._new_pool(wanted.base_path, 1, wanted.adapter_path)
            except Exception as err:  # the current version keeps all traffic
                self.candidate_error = f"{type(err).__name__}: {err}"
                log.error("A/B candidate %s could not be loaded: %s", wanted.version, self.candidate_error)
                fresh = None
        self._candidate = fresh
        if old is not None and old.pool is not None:
            old.pool.retire()  # closes after its in-flight request
        if fresh is not None:
            log.info(
                "A/B: %s gets %.0f%% of chat requests (%s)",
                fresh.spec.version,
                fresh.share * 100,
                "shared base" if fresh.pool is None else "own model",
            )
        return self.candidate

    def _reload_current(self, manifest: dict) -> dict:
        version = manifest.get("current")
        if version is None:
            raise ManifestError(f"{self.manifest_path}: no current version promoted")
        spec = self.versions.spec_of(manifest, version)
        current = self._current
        if current is not None and spec.same_files(current.spec):
            self.last_error = None
            return {"changed": False, "version": version, "error": None}
        previous = current.spec.version if current else None
        started = time.perf_counter()
        if current is not None and current.pool.base_path == spec.base_path:
            waited = self._preload_adapter(current.pool, spec.adapter_path)
            # The swap itself: requests that start from now on are answered by `spec`; running ones keep theirs.
            self._current = _Served(spec, current.pool, current.embed)
            record = {
                "kind": "adapter_swap",
                "from": previous,
                "to": version,
                "swap_ms": round((time.perf_counter() - started) * 1000 - waited, 3),
                "waited_for_requests_ms": round(waited, 3),
            }
        else:
            pool = self._new_pool(spec.base_path, self.parallel, spec.adapter_path)
            try:
                embed = (
                    self._new_pool(spec.base_path, 1, spec.adapter_path, embedding=True) if self.embeddings else None
                )
            except Exception:
                pool.retire()
                raise
            old, self._current = self._current, _Served(spec, pool, embed)
            if old is not None:  # each closes when its in-flight requests end
                old.pool.retire()
                if old.embed is not None:
                    old.embed.retire()
            record = {
                "kind": "base_load",
                "from": previous,
                "to": version,
                "swap_ms": round((time.perf_counter() - started) * 1000, 3),
            }
        record["at"] = time.time()
        self.swaps.append(record)
        self.swap_counts[record["kind"]] = self.swap_counts.get(record["kind"], 0) + 1
        del self.swaps[:-200]
        self.last_error = None
        log.info("now serving %s (%s in %.2f ms)", version, record["kind"], record["swap_ms"])
        return {"changed": True, "version": version, "error": None, **record}

    # -- watching -----------------------------------------------------------------------------------
    def _manifest_stamp(self) -> tuple | None:
        try:
            stat = self.manifest_path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime_ns, stat.st_size, hashlib.sha256(self.manifest_path.read_bytes()).hexdigest())

    def poll_once(self) -> dict | None:
        """Reload if the manifest's mtime, size or content changed since the last look."""
        stat = None
        try:
            stat = self.manifest_path.stat()
        except FileNotFoundError:
            if self._current is not None:  # keep serving, but /health must not claim all is well
                self.last_error = f"{self.manifest_path} is missing; still serving {self.version}"
        quick = (stat.st_mtime_ns, stat.st_size) if stat else None
        if self._seen_manifest is not None and quick == self._seen_manifest[:2]:
            return None
        stamp = self._manifest_stamp()
        if stamp is None or (self._seen_manifest is not None and stamp[2] == self._seen_manifest[2]):
            self._seen_manifest = stamp
            return None
        self._seen_manifest = stamp
        return self.reload()

    def start_watching(self, interval_s: float = 0.5) -> None:
        def loop() -> None:
            while not self._watch_stop.wait(interval_s):
                try:
                    self.poll_once()
                except Exception:  # the watcher must survive anything a half-written file can do
                    log.exception("manifest watcher")

        self._watcher = threading.Thread(target=loop, name="forge-manifest-watcher", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        self.begin_shutdown()  # in-flight generations end at their next token, returning their engines
        self._watch_stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        with self._reload_lock:
            served, self._current = self._current, None
            candidate, self._candidate = self._candidate, None
        pools = [p for p in (candidate and candidate.pool, served and served.pool, served and served.embed) if p]
        for pool in pools:
            pool.retire()
        for pool in pools:
            if not pool.wait_closed(CLOSE_WAIT_S):
                log.error("an engine on %s was still in use after %.0f s; not closed", pool.base_path, CLOSE_WAIT_S)

    def health(self) -> dict:
        current = self._current
        return {
            "status": "ok" if current and not self.last_error else ("degraded" if current else "no_model"),
            "model_version": current.spec.version if current else None,
            "base_gguf": str(current.spec.base_path) if current else None,
            "adapter_gguf": str(current.spec.adapter_path) if current and current.spec.adapter_path else None,
            "parallel_requests": current.pool.size if current else self.parallel,
            "error": self.last_error,
            "manifest": str(self.manifest_path),
            "recent_swaps": self.swaps[-10:],
            "candidate": self.candidate,
            "candidate_error": self.candidate_error,
            "adapter_swap_ms": sorted(s["swap_ms"] for s in self.swaps if s["kind"] == "adapter_swap"),
            "swap_waited_for_requests_ms": sorted(
                s["waited_for_requests_ms"] for s in self.swaps if s["kind"] == "adapter_swap"
            ),
        }
