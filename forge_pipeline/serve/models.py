"""ModelHost: keeps the manifest's current version loaded and hot-swaps it.

* Same base GGUF, new adapter: the adapter is loaded once per path with llama.cpp's adapter API and set on
  the live context (no model reload, well under a millisecond), then the prompt cache and KV memory are
  cleared so no logits computed under the previous adapter are reused.
* New base GGUF: the new base is loaded beside the old one (requests keep flowing to the old one meanwhile)
  and the pointer switches only once it is ready; the old one is closed after its last request ends.
* A manifest that is unreadable or names a missing/corrupt file (sha256 mismatch) is refused: the old
  version keeps serving and the error is kept for /health.
* A/B: when the manifest names a `candidate` with a traffic share, chat sessions opened with `ab=True` go to
  the candidate with that probability (serve.routing.TrafficRouter). A candidate on the same base GGUF
  is an adapter set on the shared context for that request (a swap costs well under a millisecond; the
  context lock already serializes requests); on another base it gets its own loaded model. A broken
  candidate is dropped (the error is in /health) and the current version keeps all traffic.

A llama.cpp context is not thread-safe, so each loaded model has a lock that a request holds for its whole
generation (streaming included). Swaps take the same lock: a request finishes on the model it started on,
and the next one sees the new version; nothing is refused during a swap.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from forge_pipeline.export.manifest import ManifestError, candidate_of, read_manifest, verify_version
from forge_pipeline.serve.routing import TrafficRouter

log = logging.getLogger(__name__)
# `model` values that mean "whatever the server serves by default" (the current version, A/B included).
DEFAULT_MODEL_NAMES = ("forge", "current")


class NoModelError(RuntimeError):
    """Nothing is loaded yet (no promoted version, or the first one was refused)."""


class UnknownVersionError(LookupError):
    """A request named a model this server cannot answer with (not in the manifest, or not on the served base)."""


def _clear_state(llm) -> None:
    import llama_cpp

    llm.reset()
    memory = llama_cpp.llama_get_memory(llm.ctx)
    if memory is not None:
        llama_cpp.llama_memory_clear(memory, True)


@dataclass
class _Engine:
    """One llama.cpp model+context with the adapters it has loaded (adapters belong to a model)."""

    llm: object
    adapters: dict[str, object] = field(default_factory=dict)
    active: str | None = None

    def load_adapter(self, path: Path) -> object:
        """Load an adapter GGUF for this model once (without activating it)."""
        import llama_cpp

        key = str(path)
        if key not in self.adapters:
            pointer = llama_cpp.llama_adapter_lora_init(self.llm.model, key.encode("utf-8"))
            if not pointer:
                raise ManifestError(f"llama.cpp could not load the adapter GGUF {key} for this base model")
            self.adapters[key] = pointer
        return self.adapters[key]

    def set_adapter(self, path: Path | None) -> None:
        import llama_cpp

        key = str(path) if path else None
        if key == self.active:
            return
        if key is None:
            status = llama_cpp.llama_set_adapters_lora(self.llm.ctx, None, 0, None)
        else:
            self.load_adapter(path)
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self.adapters[key])
            scales = (ctypes.c_float * 1)(1.0)
            status = llama_cpp.llama_set_adapters_lora(self.llm.ctx, adapters, 1, scales)
        if status:
            raise ManifestError(f"llama.cpp refused to set adapter {key} (status {status})")
        _clear_state(self.llm)
        self.active = key

    def close(self) -> None:
        import llama_cpp

        # Adapters must be freed while their model is alive.
        llama_cpp.llama_set_adapters_lora(self.llm.ctx, None, 0, None)
        for pointer in self.adapters.values():
            llama_cpp.llama_adapter_lora_free(pointer)
        self.adapters.clear()
        self.llm.close()


class FairLock:
    """A FIFO lock: threading.Lock lets a busy stream of requests overtake a waiting swap indefinitely;
    with tickets a swap waits for at most the requests that were already queued before it."""

    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._next_ticket = 0
        self._serving = 0

    def acquire(self) -> None:
        with self._condition:
            ticket = self._next_ticket
            self._next_ticket += 1
            while ticket != self._serving:
                self._condition.wait()

    def release(self) -> None:
        with self._condition:
            self._serving += 1
            self._condition.notify_all()

    def __enter__(self) -> FairLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@dataclass
class _Loaded:
    version: str
    base_path: Path
    adapter_path: Path | None
    entry: dict
    chat: _Engine
    embed: _Engine | None
    lock: FairLock = field(default_factory=FairLock)


@dataclass
class _Candidate:
    """The manifest's A/B candidate (or a version a request named, `pinned`); `own` is its separately loaded
    model when it does not share the base."""

    version: str
    share: float
    base_path: Path
    adapter_path: Path | None
    entry: dict
    own: _Loaded | None = None
    pinned: bool = False


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
    ):
        self.manifest_path = Path(manifest_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.embeddings = embeddings
        self.seed = seed
        self._current: _Loaded | None = None
        self._candidate: _Candidate | None = None
        self.candidate_error: str | None = None
        self.router = TrafficRouter(router_seed)
        self._reload_lock = threading.Lock()  # one reload at a time
        self._pointer_lock = threading.Lock()  # guards self._current
        self.last_error: str | None = None
        self.swaps: list[dict] = []
        self.swap_counts: dict[str, int] = {}  # all swaps since start by kind (self.swaps keeps the last 200)
        self.refusals = 0  # manifests refused since start (the old version kept serving)
        self._sha_cache: dict[tuple, str] = {}
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._seen_manifest: tuple | None = None
        # Set when the server shuts down: generations stop at their next token (see `stopping`).
        self.stopping_event = threading.Event()

    # -- requests ---------------------------------------------------------------------------------
    @property
    def version(self) -> str | None:
        current = self._current
        return current.version if current else None

    @property
    def entry(self) -> dict | None:
        current = self._current
        return current.entry if current else None

    @property
    def candidate(self) -> dict | None:
        candidate = self._candidate
        return (
            None
            if candidate is None
            else {"version": candidate.version, "traffic_share": candidate.share, "shared_base": candidate.own is None}
        )

    def stopping(self, input_ids, logits) -> bool:
        """A llama-cpp-python stopping criterion: true once the server is shutting down, so an in-flight
        generation ends at its next token instead of holding the model lock until max_tokens."""
        return self.stopping_event.is_set()

    def resolve(self, model: str | None) -> str | None:
        """The version a request's `model` names: None for the default (A/B-routed current version), else a
        manifest version this server can answer with. Raises UnknownVersionError naming why not."""
        if model is None or model in DEFAULT_MODEL_NAMES:
            return None
        loaded, candidate = self._current, self._candidate
        if loaded is None:
            raise NoModelError(self.last_error or "no model version is promoted in the manifest yet")
        if model == loaded.version or (candidate is not None and model == candidate.version):
            return model
        self._pinned(model, loaded)
        return model

    def _pinned(self, version: str, loaded: _Loaded) -> _Candidate:
        """A manifest version that is neither current nor candidate, served by adapter swap on the shared base."""
        try:
            manifest = read_manifest(self.manifest_path)
        except ManifestError as err:
            raise UnknownVersionError(f"the manifest cannot be read ({err})") from None
        if version not in manifest["versions"]:
            raise UnknownVersionError("it is not a version in the adapter manifest")
        try:
            base_path, adapter_path = self._serving_paths(self.verified_files(manifest, version))
        except ManifestError as err:
            raise UnknownVersionError(f"its files cannot be served ({err})") from None
        if adapter_path is None or base_path != loaded.base_path:
            raise UnknownVersionError(
                f"it is not an adapter on the served base {loaded.base_path.name}; only "
                "versions that an adapter swap can serve are selectable"
            )
        return _Candidate(version, 0.0, base_path, adapter_path, manifest["versions"][version], pinned=True)

    @contextlib.contextmanager
    def session(self, kind: str = "chat", ab: bool = False, version: str | None = None) -> Iterator[Session]:
        """The engine for one request. `ab=True` (chat requests) lets the router send it to the candidate;
        `version` (from `resolve`) pins the request to that version instead."""
        to_candidate = None  # drawn once per request, even if a swap makes us look again
        while True:
            loaded = self._current
            if loaded is None:
                raise NoModelError(self.last_error or "no model version is promoted in the manifest yet")
            candidate = self._candidate
            if version is not None and version != loaded.version:
                if candidate is not None and candidate.version == version:
                    use = candidate
                else:
                    use = self._pinned(version, loaded)
            elif version is not None:
                use = None
            else:
                candidate = candidate if ab and kind == "chat" else None
                if candidate is not None and to_candidate is None:
                    to_candidate = self.router.to_candidate(candidate.share)
                use = candidate if candidate is not None and to_candidate else None
            if use is not None and use.own is None and use.base_path != loaded.base_path:
                if use.pinned or version is not None:
                    raise UnknownVersionError(f"{version} is no longer servable on the current base")
                use = None  # the current base just changed; the candidate is re-checked by the reload
            holder = use.own if use is not None and use.own is not None else loaded
            holder.lock.acquire()
            # A base switch or candidate change may have happened while we waited; then look again.
            if loaded is self._current and (use is None or use.pinned or use is self._candidate):
                break
            holder.lock.release()
        try:
            engine = loaded.embed if kind == "embed" else holder.chat
            if engine is None:
                raise NoModelError("embeddings are disabled on this server")
            if kind != "embed" and holder is loaded:
                # Shared context: the adapter of the version this request goes to (no-op when already set).
                engine.set_adapter(use.adapter_path if use is not None else loaded.adapter_path)
            route = "current" if use is None else ("pinned" if use.pinned else "candidate")
            yield Session(use.version if use is not None else loaded.version, engine.llm, route)
        finally:
            holder.lock.release()

    # -- loading ------------------------------------------------------------------------------------
    def _new_engine(self, base_path: Path, embedding: bool) -> _Engine:
        from llama_cpp import LLAMA_POOLING_TYPE_MEAN, Llama

        extra = {"embedding": True, "pooling_type": LLAMA_POOLING_TYPE_MEAN} if embedding else {}
        llm = Llama(
            model_path=str(base_path),
            n_ctx=self.n_ctx,
            n_threads=self.n_threads,
            seed=self.seed,
            verbose=False,
            **extra,
        )
        return _Engine(llm)

    def verified_files(self, manifest: dict, version: str) -> dict[str, Path]:
        """The files of `version`, sha256-checked once per (path, size, mtime): polling the manifest and every
        download of a multi-GB base stay cheap."""
        entry = manifest["versions"].get(version)
        if entry is None:
            raise ManifestError(f"{self.manifest_path}: current version {version!r} is not in the manifest")
        key = (version, tuple(sorted((role, str(f and f.get("sha256"))) for role, f in entry["files"].items())))
        stamp = []
        from forge_pipeline.export.manifest import resolve_file

        for _role, file_entry in sorted(entry["files"].items()):
            if file_entry:
                path = resolve_file(file_entry, self.manifest_path)
                stat = path.stat() if path.is_file() else None
                stamp.append((str(path), stat and (stat.st_size, stat.st_mtime_ns)))
        cache_key = (key, tuple(stamp))
        if cache_key in self._sha_cache:
            return {role: Path(path) for role, path in self._sha_cache[cache_key]}
        resolved = verify_version(manifest, version, self.manifest_path)
        if "base_gguf" not in resolved and "merged_gguf" not in resolved:
            raise ManifestError(f"{self.manifest_path}: {version} names neither base_gguf nor merged_gguf")
        self._sha_cache[cache_key] = tuple((role, str(path)) for role, path in resolved.items())
        return resolved

    def _serving_paths(self, resolved: dict[str, Path]) -> tuple[Path, Path | None]:
        # A version with an adapter is served as base + hot-swappable adapter; otherwise as the merged model.
        if "adapter_gguf" in resolved and "base_gguf" in resolved:
            return resolved["base_gguf"], resolved["adapter_gguf"]
        return resolved.get("merged_gguf") or resolved["base_gguf"], None

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
        manifest = read_manifest(self.manifest_path)
        result = self._reload_current(manifest)
        result["candidate"] = self._sync_candidate(manifest)
        return result

    def _sync_candidate(self, manifest: dict) -> dict | None:
        """Load, update or drop the A/B candidate. A bad candidate never affects the current version."""
        wanted = None
        try:
            spec = candidate_of(manifest, self.manifest_path)
            if spec is not None and spec["version"] != self.version:
                base_path, adapter_path = self._serving_paths(self.verified_files(manifest, spec["version"]))
                wanted = (
                    spec["version"],
                    spec["traffic_share"],
                    base_path,
                    adapter_path,
                    manifest["versions"][spec["version"]],
                )
            self.candidate_error = None
        except Exception as err:  # the current version keeps all traffic
            self.candidate_error = f"{type(err).__name__}: {err}"
            log.error("A/B candidate refused: %s", self.candidate_error)
        old, current = self._candidate, self._current
        if wanted is None:
            fresh = None
        else:
            version, share, base_path, adapter_path, entry = wanted
            shares_base = current is not None and adapter_path is not None and base_path == current.base_path
            if old is not None and (old.version, old.base_path, old.adapter_path, old.own is None) == (
                version,
                base_path,
                adapter_path,
                shares_base,
            ):
                old.share = share  # only the share changed
                return self.candidate
            fresh = _Candidate(version, share, base_path, adapter_path, entry)
            try:
                if shares_base:
                    with current.lock:  # load it now, so a broken adapter fails here and not in a request
                        current.chat.load_adapter(adapter_path)
                else:
                    chat = self._new_engine(base_path, embedding=False)
                    try:
                        chat.set_adapter(adapter_path)
                    except Exception:
                        chat.close()
                        raise
                    fresh.own = _Loaded(version, base_path, adapter_path, entry, chat, None)
            except Exception as err:  # the current version keeps all traffic
                self.candidate_error = f"{type(err).__name__}: {err}"
                log.error("A/B candidate %s could not be loaded: %s", version, self.candidate_error)
                fresh = None
        with self._pointer_lock:
            self._candidate = fresh
        if old is not None and old.own is not None:
            with old.own.lock:  # waits for its in-flight request
                old.own.chat.close()
        if fresh is not None:
            log.info(
                "A/B: %s gets %.0f%% of chat requests (%s)",
                fresh.version,
                fresh.share * 100,
                "shared base" if fresh.own is None else "own model",
            )
        return self.candidate

    def _reload_current(self, manifest: dict) -> dict:
        version = manifest.get("current")
        if version is None:
            raise ManifestError(f"{self.manifest_path}: no current version promoted")
        resolved = self.verified_files(manifest, version)
        entry = manifest["versions"][version]
        base_path, adapter_path = self._serving_paths(resolved)
        current = self._current
        if (
            current
            and current.version == version
            and current.base_path == base_path
            and current.adapter_path == adapter_path
        ):
            self.last_error = None
            return {"changed": False, "version": version, "error": None}
        previous = current.version if current else None
        started = time.perf_counter()
        if current is not None and current.base_path == base_path:
            with current.lock:
                lock_wait = time.perf_counter() - started
                swap_started = time.perf_counter()
                current.chat.set_adapter(adapter_path)
                if current.embed is not None:
                    current.embed.set_adapter(adapter_path)
                current.version, current.adapter_path, current.entry = version, adapter_path, entry
                swap_ms = (time.perf_counter() - swap_started) * 1000
            record = {
                "kind": "adapter_swap",
                "from": previous,
                "to": version,
                "swap_ms": round(swap_ms, 3),
                "waited_for_requests_ms": round(lock_wait * 1000, 3),
            }
        else:
            chat = self._new_engine(base_path, embedding=False)
            embed = self._new_engine(base_path, embedding=True) if self.embeddings else None
            try:
                chat.set_adapter(adapter_path)
                if embed is not None:
                    embed.set_adapter(adapter_path)
            except Exception:
                chat.close()
                if embed is not None:
                    embed.close()
                raise
            fresh = _Loaded(version, base_path, adapter_path, entry, chat, embed)
            with self._pointer_lock:
                old, self._current = self._current, fresh
            if old is not None:
                with old.lock:  # waits for the old model's in-flight request to finish
                    old.chat.close()
                    if old.embed is not None:
                        old.embed.close()
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
        self.stopping_event.set()  # in-flight generations end at their next token, releasing their locks
        self._watch_stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        loaded, self._current = self._current, None
        candidate, self._candidate = self._candidate, None
        if candidate is not None and candidate.own is not None:
            with candidate.own.lock:
                candidate.own.chat.close()
        if loaded is not None:
            with loaded.lock:
                loaded.chat.close()
                if loaded.embed is not None:
                    loaded.embed.close()

    def health(self) -> dict:
        current = self._current
        return {
            "status": "ok" if current and not self.last_error else ("degraded" if current else "no_model"),
            "model_version": current.version if current else None,
            "base_gguf": str(current.base_path) if current else None,
            "adapter_gguf": str(current.adapter_path) if current and current.adapter_path else None,
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
