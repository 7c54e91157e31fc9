"""Prometheus metrics of `forge serve`, at `GET /metrics` (prometheus-client's text format).

- forge_http_requests_total{method, route, status} and forge_http_request_duration_seconds{method, route}:
  every request, labelled by the route template (`/v1/models/{model}`), never the raw path, so a client
  cannot grow the label set. A client that hung up before its response was complete is counted as
  status="499" (nginx's "client closed request"), not as a server error.
- forge_tokens_total{kind, direction, version}: prompt and completion tokens of chat/completion requests.
- forge_time_to_first_token_seconds{kind}: from the start of generation to the first sampled token.
- forge_model_swaps_total{kind}, forge_manifest_refusals_total, forge_served_version_info{version}: read from
  the ModelHost at scrape time (adapter swaps, base loads, refused manifests, what is being served).

Each app has its own registry (no process-global state: tests build many apps in one process).
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from forge_pipeline.serve import dependencies as deps

CLIENT_CLOSED_REQUEST = "499"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _HostCollector:
    def __init__(self, model_host):
        self.model_host = model_host

    def collect(self):
        swaps = CounterMetricFamily("forge_model_swaps", "Model version changes by kind", labels=["kind"])
        counts: dict[str, int] = {"adapter_swap": 0, "base_load": 0}
        for kind, count in self.model_host.swap_counts.items():
            counts[kind] = count
        for kind, count in counts.items():
            swaps.add_metric([kind], count)
        yield swaps
        yield CounterMetricFamily(
            "forge_manifest_refusals", "Manifests refused (old version kept serving)", value=self.model_host.refusals
        )
        served = GaugeMetricFamily(
            "forge_served_version_info", "The model version being served (value 1)", labels=["version"]
        )
        if self.model_host.version is not None:
            served.add_metric([self.model_host.version], 1)
        yield served


class Metrics:
    def __init__(self, model_host):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "forge_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "forge_http_request_duration_seconds",
            "HTTP request latency (until the last byte)",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "forge_tokens",
            "Tokens in (prompt) and out (completion)",
            ["kind", "direction", "version"],
            registry=self.registry,
        )
        self.first_token = Histogram(
            "forge_time_to_first_token_seconds",
            "Time to the first generated token",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_HostCollector(model_host))

    def generation(
        self, kind: str, version: str, prompt_tokens: int | None, completion_tokens: int, first_token_s: float | None
    ) -> None:
        if prompt_tokens:
            self.tokens.labels(kind, "prompt", version).inc(prompt_tokens)
        if completion_tokens:
            self.tokens.labels(kind, "completion", version).inc(completion_tokens)
        if first_token_s is not None:
            self.first_token.labels(kind).observe(first_token_s)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RequestMetrics:
    """Pure ASGI middleware (a BaseHTTPMiddleware would keep streamed responses' generators alive after a
    hang-up): counts each request with its route template and final status, and times it to the last byte."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        state = {"code": 500, "complete": False, "client_gone": False}

        async def receive_and_note():
            message = await receive()
            if message["type"] == "http.disconnect":
                state["client_gone"] = True
            return message

        async def send_and_note(message):
            if message["type"] == "http.response.start":
                state["code"] = message["status"]
            try:
                await send(message)
            except OSError:  # uvicorn's ClientDisconnected: the client hung up while we were sending
                state["client_gone"] = True
                raise
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                state["complete"] = True

        try:
            await self.app(scope, receive_and_note, send_and_note)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            gone = state["client_gone"] and not state["complete"]
            status = CLIENT_CLOSED_REQUEST if gone else str(state["code"])
            self.metrics.requests.labels(scope["method"], template, status).inc()
            self.metrics.latency.labels(scope["method"], template).observe(time.perf_counter() - started)


router = APIRouter(include_in_schema=False)


@router.get("/metrics")
def prometheus_metrics(metrics: Metrics = Depends(deps.metrics)):
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
