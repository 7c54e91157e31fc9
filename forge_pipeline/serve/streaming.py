"""Server-sent events from a blocking generator that holds the model lock while it runs.

Why not Starlette's StreamingResponse: the request handler would have to take the model lock before returning
the response, and when the client is already gone Starlette never starts the body, so nothing releases it
(every later chat request then hangs). Here the lock is taken inside the generator, on its first step, and
whatever happens (client gone before the first byte, mid-stream hang-up, server shutdown) the generator is
closed in a shielded scope, which releases it.

The first event is produced before the status line is sent, so an error found on the first step (prompt
longer than the context, model gone) is a normal OpenAI error response (400/503), not a broken 200 stream.
An error after that is sent as one `data: {"error": ...}` event, which the OpenAI SDK raises as APIError.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import anyio

from forge_pipeline.serve.errors import APIError

_END = object()


def sse(payload: dict | str) -> bytes:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n".encode()


class EventStream:
    """An ASGI response: each item of `events` (bytes) is one SSE frame."""

    def __init__(self, events: Iterator[bytes], headers: dict[str, str] | None = None):
        self.events = events
        self.headers = headers or {}

    async def __call__(self, scope, receive, send) -> None:
        generator = self.events

        async def step():
            # A worker thread: generation blocks. Not abandoned on cancel, so the thread's step always
            # finishes before the generator is closed (a generator cannot be closed while it runs).
            return await anyio.to_thread.run_sync(next, generator, _END)

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
                    await err.response(self.headers)(scope, receive, send)
                    group.cancel_scope.cancel()
                    return
                headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                           *((k.lower().encode(), v.encode()) for k, v in self.headers.items())]
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
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(generator.close)
