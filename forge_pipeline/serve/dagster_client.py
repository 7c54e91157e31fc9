"""A small client for a running Dagster webserver's GraphQL API: launch, inspect, list events, terminate.

Fine-tunes are Dagster runs so they are visible, retried and cancellable in Dagster's UI like any other run;
the server never trains in its own process.
"""

from __future__ import annotations

import httpx

from forge_pipeline.errors import ForgeError

REPOSITORY = "__repository__"  # the name Dagster gives a code location's single Definitions object

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status jobName } }
    ... on Error { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message }
  }
}"""

RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId status jobName startTime endTime }
    ... on Error { message }
    ... on PythonError { message }
  }
}"""

EVENTS = """
query Events($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection { events { __typename ... on MessageEvent { message timestamp level stepKey eventType } } }
    ... on Error { message }
    ... on PythonError { message }
  }
}"""

TERMINATE = """
mutation Terminate($runId: String!) {
  terminateRun(runId: $runId) {
    __typename
    ... on TerminateRunSuccess { run { runId status } }
    ... on TerminateRunFailure { message run { runId status } }
    ... on Error { message }
    ... on PythonError { message }
  }
}"""


class DagsterError(ForgeError, RuntimeError):
    """Dagster refused or could not be reached; `status` is the HTTP status the server should answer with."""

    def __init__(self, message: str, status: int = 502):
        super().__init__(message)
        self.status = status


class DagsterClient:
    def __init__(self, url: str, location: str, timeout_s: float = 10.0):
        self.url = url.rstrip("/") + "/graphql"
        self.location = location
        self.timeout_s = timeout_s

    def _query(self, query: str, variables: dict, field: str) -> dict:
        try:
            response = httpx.post(self.url, json={"query": query, "variables": variables}, timeout=self.timeout_s)
        except httpx.HTTPError as err:
            raise DagsterError(
                f"Dagster webserver at {self.url} is unreachable ({type(err).__name__}: {err}); "
                "start it with `dagster dev` or set serve.dagster_url"
            ) from None
        if response.status_code != 200:
            raise DagsterError(
                f"Dagster GraphQL at {self.url} answered HTTP {response.status_code}: {response.text[:300]}"
            )
        payload = response.json()
        if payload.get("errors"):
            raise DagsterError(f"Dagster GraphQL error: {'; '.join(e.get('message', '') for e in payload['errors'])}")
        result = payload["data"][field]
        kind = result["__typename"]
        if kind in ("RunNotFoundError",):
            raise DagsterError(result.get("message") or "run not found", status=404)
        if kind in (
            "PipelineNotFoundError",
            "InvalidSubsetError",
            "RunConfigValidationInvalid",
            "InvalidStepError",
            "InvalidOutputError",
            "RepositoryLocationNotFound",
        ):
            detail = result.get("message") or "; ".join(e["message"] for e in result.get("errors", []))
            raise DagsterError(f"Dagster refused the request ({kind}): {detail}", status=400)
        if kind in (
            "PythonError",
            "UnauthorizedError",
            "RunConflict",
            "ConflictingExecutionParamsError",
            "PresetNotFoundError",
            "NoModeProvidedError",
            "TerminateRunFailure",
        ):
            raise DagsterError(
                f"Dagster failed ({kind}): {result.get('message')}",
                status=409 if kind == "TerminateRunFailure" else 502,
            )
        return result

    def launch(self, job: str, assets: list[str] | None = None, run_config: dict | None = None) -> dict:
        selector: dict[str, object] = {
            "repositoryLocationName": self.location,
            "repositoryName": REPOSITORY,
            "jobName": job,
        }
        if assets:
            selector["assetSelection"] = [{"path": key.split("/")} for key in assets]
        params = {"selector": selector, "runConfigData": run_config or {}, "mode": "default"}
        return self._query(LAUNCH, {"params": params}, "launchRun")["run"]

    def run(self, run_id: str) -> dict:
        return self._query(RUN, {"runId": run_id}, "runOrError")

    def events(self, run_id: str) -> list[dict]:
        result = self._query(EVENTS, {"runId": run_id}, "logsForRun")
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

    def terminate(self, run_id: str) -> dict:
        return self._query(TERMINATE, {"runId": run_id}, "terminateRun")["run"]
