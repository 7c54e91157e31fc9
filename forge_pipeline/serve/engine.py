"""llama.cpp engines and the pool a request checks one out of.

An `Engine` is one llama-cpp-python `Llama` (model + context) with the LoRA adapters it has loaded. A context is
not thread-safe and holds exactly one adapter set at a time, so a request owns an engine for its whole
generation (streaming included) and sets, on that engine, the adapter of the version it must be answered by:
llama.cpp's `llama_set_adapters_lora` (~0.1 ms), then the prompt cache and KV memory are cleared so no logits
computed under another adapter are reused. Because the adapter is chosen per request from an immutable
version description, a request pinned to a version is answered by that version whatever the manifest does
meanwhile.

An `EnginePool` holds `parallel` engines on one base GGUF: that many requests generate at once, each on its own
context (llama.cpp releases the GIL while it decodes). Several `Llama` objects on one GGUF share its weights
through the page cache (llama.cpp mmaps the file), so an extra engine costs its KV cache and compute buffers;
benchmarks/README.md has the measured cost. Waiting requests are served first come, first served.
"""

from __future__ import annotations

import ctypes
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forge_pipeline.export.manifest import ManifestError


class ShuttingDown(RuntimeError):
    """The server is shutting down: the request was cut off (or never started)."""


class PoolRetired(RuntimeError):
    """The pool's base model was replaced while the request waited: look up the served version again."""


def _clear_state(llm) -> None:
    import llama_cpp

    llm.reset()
    memory = llama_cpp.llama_get_memory(llm.ctx)
    if memory is not None:
        llama_cpp.llama_memory_clear(memory, True)


@dataclass
class Engine:
    """One llama.cpp model+context with the adapters it has loaded (adapters belong to a model)."""

    llm: Any  # llama-cpp-python's Llama (its subclass is made on first use: _stoppable_llama)
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
        """Make `path` (None: no adapter) the context's only adapter; a no-op when it already is."""
        import llama_cpp

        key = str(path) if path else None
        if key == self.active:
            return
        if key is None or path is None:
            status = llama_cpp.llama_set_adapters_lora(self.llm.ctx, None, 0, None)
        else:
            self.load_adapter(path)
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self.adapters[key])
            scales = (ctypes.c_float * 1)(1.0)
            status = llama_cpp.llama_set_adapters_lora(self.llm.ctx, adapters, 1, scales)
        if status:
            self.active = "?"  # unknown state: the next request sets its adapter again
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


_LLAMA_CLASS = None


def _stoppable_llama():
    """llama-cpp-python's Llama, whose every generation also asks `stop_check` after each token.

    `create_chat_completion` takes no stopping criteria of its own (only the chat format's), but every
    generation, chat or completion, streamed or not, goes through the public `Llama.generate`, which does:
    the request that holds the engine sets `stop_check` (serve's shutdown flag and token meter)."""
    global _LLAMA_CLASS
    if _LLAMA_CLASS is None:
        from llama_cpp import Llama, StoppingCriteriaList

        class StoppableLlama(Llama):
            stop_check = None

            def generate(self, tokens, *args, stopping_criteria=None, **kwargs):
                if self.stop_check is not None:
                    stopping_criteria = StoppingCriteriaList([*(stopping_criteria or []), self.stop_check])
                return super().generate(tokens, *args, stopping_criteria=stopping_criteria, **kwargs)

        _LLAMA_CLASS = StoppableLlama
    return _LLAMA_CLASS


def new_engine(base_path: Path, n_ctx: int, n_threads: int | None, seed: int, embedding: bool = False) -> Engine:
    from llama_cpp import LLAMA_POOLING_TYPE_MEAN

    extra = {"embedding": True, "pooling_type": LLAMA_POOLING_TYPE_MEAN} if embedding else {}
    llama = _stoppable_llama()
    llm = llama(model_path=str(base_path), n_ctx=n_ctx, n_threads=n_threads, seed=seed, verbose=False, **extra)
    return Engine(llm)


class EnginePool:
    """Engines on one base GGUF, checked out one request at a time each, first come first served.

    `retire()` (the base was replaced): waiting requests get PoolRetired and look again; the engines close
    once the last checked-out one comes back."""

    def __init__(self, base_path: Path, engines: list[Engine]):
        self.base_path = base_path
        self.engines = engines
        self._free = list(engines)
        self._waiters: deque[object] = deque()
        self._condition = threading.Condition(threading.Lock())
        self._retired = False
        self._closed = False  # closing has begun (guarded by the condition)
        self._engines_closed = threading.Event()

    @property
    def size(self) -> int:
        return len(self.engines)

    def checkout(self, prefer: str | None, cancelled: Callable[[], bool]) -> Engine:
        """A free engine, preferring one whose active adapter is `prefer` (no cache clear then). Raises
        ShuttingDown when `cancelled()` turns true while waiting, PoolRetired when the pool is retired."""
        ticket = object()
        with self._condition:
            self._waiters.append(ticket)
            try:
                while not (self._free and self._waiters[0] is ticket):
                    if self._retired:
                        raise PoolRetired(str(self.base_path))
                    if cancelled():
                        raise ShuttingDown("the server is shutting down")
                    self._condition.wait(timeout=0.1)  # also wakes up to notice a shutdown
                if self._retired:
                    raise PoolRetired(str(self.base_path))
            finally:
                self._waiters.remove(ticket)
                self._condition.notify_all()  # the next in line may be able to go now
            engine = next((e for e in self._free if e.active == prefer), self._free[0])
            self._free.remove(engine)
            return engine

    def checkin(self, engine: Engine) -> None:
        with self._condition:
            self._free.append(engine)
            close_now = self._retired and len(self._free) == len(self.engines) and not self._closed
            self._closed = self._closed or close_now
            self._condition.notify_all()
        if close_now:
            self._close_engines()

    def retire(self) -> None:
        """No new checkouts; the engines close when the last request using one ends (now, if none does)."""
        with self._condition:
            self._retired = True
            close_now = len(self._free) == len(self.engines) and not self._closed
            self._closed = self._closed or close_now
            self._condition.notify_all()
        if close_now:
            self._close_engines()

    def wait_closed(self, timeout: float) -> bool:
        return self._engines_closed.wait(timeout)

    def _close_engines(self) -> None:
        try:
            for engine in self.engines:
                engine.close()
        finally:
            self._engines_closed.set()
