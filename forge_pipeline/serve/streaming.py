"""Server-sent events from a blocking generator that holds the model lock while it runs.

Why not Starlette's StreamingResponse: the request handler would have to take the model lock before returning
the response, and when the client is already gone Starlette never starts the body, so nothing releases it
(every later chat request then hangs). Here the lock is taken inside the generator, on its first step, and
whatever happens (client gone before the first byte, mid-stream hang-up, server shutdown) the generator is
closed in a shielded scope, which releases it.

The first event is produced before the status line is sent, so an error found on the first step (prompt
longer than the context, model gone) is a normal OpenAI error response (400/503), not a broken 200 stream.
An error after that (the server shutting down included) is sent as one `data: {"error": ...}` event, and the
stream ends; the OpenAI SDK raises it as APIError.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Generator

import anyio
from starlette.responses import Response

from forge_pipeline.serve.errors import APIError, as_api_error

_END = object()
log = logging.getLogger(__name__)


def sse(payload: dict | str) -> bytes:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n".encode()


class EventStream(Response):
    """An ASGI response: each item of `events` (bytes) is one SSE frame. `headers` is read after the first
    frame is produced, so the generator can fill it in (the version that answers is known only then)."""

    # A Response subclass only so FastAPI passes it through untouched; __call__ is all its own.
    def __init__(self, events: Generator[bytes, None, None], headers: dict[str, str] | None = None):  # noqa: D107
        self.status_code = 200
        self.background = None
        self.events = events
        self.extra_headers = headers if headers is not None else {}  # the same dict: the generator fills it

    async def __call__(self, scope, receive, send) -> None:
        generator = self.events
        # Held by the worker thread while it runs a step. A native task.cancel() (uvicorn's shutdown) can
        # interrupt our await of a step while the thread goes on; closing waits for the step to end here
        # (a running generator cannot be closed), so the model lock is always released.
        running = threading.Lock()

        def advance():
            with running:
                return next(generator, _END)

        def close():
            with running:
                generator.close()

        async def step():
            try:
                return await anyio.to_thread.run_sync(advance)
            except APIError:
                raise
            except Exception as err:  # shutdown, no model, a bug or a llama.cpp failure: OpenAI-shaped all the same
                answer = as_api_error(err)
                if answer.status == 500:
                    log.exception("stream failed")
                raise answer from err

        try:
            async with anyio.create_task_group() as group:

                async def watch_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(watch_disconnect)
                try:
                    item = await step()
                except APIError as err:
                    await err.response(self.extra_headers)(scope, receive, send)
                    group.cancel_scope.cancel()
                    return
                headers = [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    *((k.lower().encode(), v.encode()) for k, v in self.extra_headers.items()),
                ]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                while item is not _END:
                    await send({"type": "http.response.body", "body": item, "more_body": True})
                    try:
                        item = await step()
                    except APIError as err:
                        await send({"type": "http.response.body", "body": sse(err.body()), "more_body": True})
                        break
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                group.cancel_scope.cancel()
        except* OSError:  # the client hung up while we were sending (uvicorn's ClientDisconnected)
            pass
        finally:
            with anyio.CancelScope(shield=True):
                # Even if this await is interrupted too, the thread runs close() to its end.
                await anyio.to_thread.run_sync(close)
