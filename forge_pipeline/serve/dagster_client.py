"""The server's Dagster calls: launch, status and terminate through dagster-graphql's `DagsterGraphQLClient`
(Dagster's own public client for a running webserver).

Fine-tunes are Dagster runs so they are visible, retried and cancellable in Dagster's UI like any other run;
the server never trains in its own process.

Two reads the client has no call for are the only GraphQL written here: a run's end time (`get_run_status`
returns the status alone; a job's `finished_at` is when its run ended, not when a client first asked) and a
run's event log (a job's `/events`). Both go through gql, the GraphQL library the client itself uses.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from urllib.parse import urlsplit

import requests
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError
from gql import Client, GraphQLRequest, gql
from gql.transport.exceptions import (
    TransportConnectionFailed,
    TransportError,
    TransportQueryError,
    TransportServerError,
)
from gql.transport.requests import RequestsHTTPTransport

from forge_pipeline.errors import ForgeError

REPOSITORY = "__repository__"  # the name Dagster gives a code location's single Definitions object

RUN_END = gql("""
query RunEnd($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { endTime }
    ... on Error { message }
  }
}""")

EVENTS = gql("""
query Events($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection { events { __typename ... on MessageEvent { message timestamp level stepKey eventType } } }
    ... on Error { message }
  }
}""")

# What Dagster answers (the client's error names, GraphQL's __typename) -> the HTTP status the server gives.
NOT_FOUND = ("RunNotFoundError",)
REFUSED = (  # the request names something the code location does not have, or config it refuses
    "PipelineNotFoundError",
    "JobNotFoundError",
    "InvalidSubsetError",
    "RunConfigValidationInvalid",
    "PipelineConfigValidationInvalid",
    "InvalidStepError",
    "InvalidOutputError",
    "RepositoryLocationNotFound",
)


class DagsterError(ForgeError, RuntimeError):
    """Dagster refused or could not be reached; `status` is the HTTP status the server should answer with."""

    def __init__(self, message: str, status: int = 502):
        super().__init__(message)
        self.status = status


def _detail(body) -> str:
    if isinstance(body, list):  # RunConfigValidationInvalid: [{"message": ...}, ...]
        return "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in body)
    return str(body)


def _causes(err: BaseException) -> list[BaseException]:
    """`err` and what caused it, outermost first."""
    chain = [err]
    while (cause := chain[-1].__cause__ or chain[-1].__context__) is not None and cause not in chain:
        chain.append(cause)
    return chain


def refusal(kind: str, detail: str) -> DagsterError:
    """Dagster's answer `kind` (an error __typename) as the error the server answers with."""
    if kind in NOT_FOUND:
        return DagsterError(detail or "run not found", status=404)
    if kind in REFUSED:
        return DagsterError(f"Dagster refused the request ({kind}): {detail}", status=400)
    return DagsterError(f"Dagster failed ({kind}): {detail}", status=409 if kind == "TerminateRunFailure" else 502)


class DagsterClient:
    def __init__(self, url: str, location: str, timeout_s: float = 10.0):
        self.url = url.rstrip("/") + "/graphql"
        self.location = location
        self.timeout_s = max(1, math.ceil(timeout_s))  # the client's transport takes whole seconds
        parts = urlsplit(url)
        self._host, self._port, self._https = parts.hostname or "localhost", parts.port, parts.scheme == "https"
        self._prefix = parts.path.rstrip("/")

    def _client(self) -> DagsterGraphQLClient:
        # One per call: a gql transport holds one connection at a time, and request threads call concurrently.
        return DagsterGraphQLClient(
            self._host, port_number=self._port, use_https=self._https, timeout=self.timeout_s, path_prefix=self._prefix
        )

    def _translated(self, err: Exception) -> DagsterError:
        """What went wrong, worded for the person running the server. The client wraps transport failures
        in a DagsterGraphQLClientError whose message is the whole query: the cause says what happened."""
        chain = _causes(err)
        root = chain[-1]
        # It answered, with an HTTP error (requests' HTTPError is in the chain too).
        server = next((e for e in chain if isinstance(e, TransportServerError)), None)
        if server is not None:
            return DagsterError(f"Dagster GraphQL at {self.url} answered HTTP {server.code}: {str(server)[:300]}")
        if any(isinstance(e, TransportConnectionFailed | requests.exceptions.RequestException) for e in chain):
            return DagsterError(
                f"Dagster webserver at {self.url} is unreachable ({type(root).__name__}: {root}); "
                "start it with `dagster dev` or set serve.dagster_url"
            )
        query = next((e for e in chain if isinstance(e, TransportQueryError)), None)
        if query is not None:
            return DagsterError(f"Dagster GraphQL error: {query}")
        if isinstance(err, DagsterGraphQLClientError) and err.__cause__ is None and err.args:
            # The client's own refusals: (Dagster's error __typename, its message or body).
            detail = _detail(err.args[1]) if len(err.args) > 1 else _detail(err.body) if err.body else ""
            return refusal(str(err.args[0]), detail)
        return DagsterError(f"Dagster call to {self.url} failed: {type(root).__name__}: {root}")

    @contextlib.contextmanager
    def _answers(self) -> Iterator[None]:
        # Whatever the client or the transport raises leaves as a DagsterError (mapped to HTTP by serve/errors.py).
        try:
            yield
        except (DagsterGraphQLClientError, requests.exceptions.RequestException, TransportError) as err:
            raise self._translated(err) from None

    def _read(self, query, run_id: str, field: str) -> dict:
        """One of the two reads the client has no call for (see the module's docstring)."""
        transport = RequestsHTTPTransport(url=self.url, timeout=self.timeout_s)
        with self._answers():
            request = GraphQLRequest(query, variable_values={"runId": run_id})
            result = Client(transport=transport).execute(request)[field]
        if result["__typename"] not in ("Run", "EventConnection"):
            raise refusal(result["__typename"], result.get("message") or "")
        return result

    def launch(self, job: str, run_config: dict | None = None) -> str:
        """Start a run of `job` in the configured code location; its run id."""
        with self._answers():
            return self._client().submit_job_execution(
                job, repository_location_name=self.location, repository_name=REPOSITORY, run_config=run_config or {}
            )

    def status(self, run_id: str) -> str:
        """The run's DagsterRunStatus name (QUEUED, STARTED, SUCCESS, ...)."""
        with self._answers():
            return self._client().get_run_status(run_id).value

    def end_time(self, run_id: str) -> float | None:
        """When the run ended (seconds since the epoch); None while it runs."""
        return self._read(RUN_END, run_id, "runOrError").get("endTime")

    def events(self, run_id: str) -> list[dict]:
        result = self._read(EVENTS, run_id, "logsForRun")
        return [
            {
                "type": event.get("eventType") or event["__typename"],
                "message": event.get("message"),
                "timestamp": event.get("timestamp"),
                "level": event.get("level"),
                "step": event.get("stepKey"),
            }
            for event in result["events"]
        ]

    def terminate(self, run_id: str) -> None:
        with self._answers():
            self._client().terminate_run(run_id)
