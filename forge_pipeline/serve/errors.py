"""The one error helper of `forge serve`: every error answer, OpenAI route or Forge route, has OpenAI's shape

    {"error": {"message": str, "type": str, "param": str | None, "code": str | None}}

with the status codes OpenAI uses (400 bad request, 401/403 access, 404 not found, 409 conflict, 413 too large,
429 rate limit, 500/502/503 server side), so the official SDK raises its matching exception class
(BadRequestError, NotFoundError, ...) with `param` and `code` filled in.

Routes and the engine raise typed errors (APIError, or a domain error such as UnknownVersionError or
DagsterError); the handlers `install_error_handlers` registers on the app turn each into that shape, through
`as_api_error`, the one table from error class to status and wording. A route catches an error only to decide
something (skip a version, answer 200 without admin), never to restate it as HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


class APIError(Exception):
    """Raise from any route: becomes OpenAI's error JSON with this status."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None, type: str | None = None
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self, headers: dict | None = None) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def invalid(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def unsupported(param: str, why: str = "") -> APIError:
    return APIError(
        400,
        f"'{param}' is not supported by this server{': ' + why if why else ''}",
        param=param,
        code="unsupported_parameter",
    )


def model_not_found(model: str | None, why: str = "") -> APIError:
    return APIError(
        404,
        f"The model '{model}' does not exist{': ' + why if why else ''}. "
        "GET /v1/models lists the ones this server can answer with.",
        param="model",
        code="model_not_found",
    )


def no_model(err: Exception) -> APIError:
    return APIError(503, f"no model is being served: {err}", code="model_not_loaded")


def shutting_down(err: Exception) -> APIError:
    return APIError(
        503, f"{err}. Retry the request once the server is back.", code="server_shutting_down", type="server_error"
    )


def _domain_errors() -> dict[type[BaseException], Callable[[Any], APIError]]:
    """Forge's own errors a route lets through, and the OpenAI error each one is. Imported here, not at the top:
    the engine and the stages import this module's helpers."""
    from forge_pipeline.embed.backends import EmbedBackendError
    from forge_pipeline.embed.search import ModelMismatchError
    from forge_pipeline.embed.store import IndexNotFoundError
    from forge_pipeline.serve.dagster_client import DagsterError
    from forge_pipeline.serve.engine import ShuttingDown
    from forge_pipeline.serve.models import NoModelError
    from forge_pipeline.serve.versions import UnknownVersionError

    def unknown_version(err) -> APIError:
        return model_not_found(err.model, err.reason)

    def dagster(err) -> APIError:
        return APIError(err.status, str(err))

    def conflict(err) -> APIError:  # the server's set-up cannot do this (a backend, an index built otherwise)
        return APIError(409, str(err))

    def missing(err) -> APIError:
        return APIError(404, str(err))

    return {
        ShuttingDown: shutting_down,
        NoModelError: no_model,
        UnknownVersionError: unknown_version,
        DagsterError: dagster,
        EmbedBackendError: conflict,
        ModelMismatchError: conflict,
        IndexNotFoundError: missing,
    }


def as_api_error(err: BaseException) -> APIError:
    """The one mapping from anything a route or a stream raises to OpenAI's error JSON."""
    if isinstance(err, APIError):
        return err
    if isinstance(err, RequestValidationError):
        return validation_error(err)
    domain = _domain_errors()
    for error_class in type(err).__mro__:  # the most specific class that has an answer
        if error_class in domain:
            return domain[error_class](err)
    if isinstance(err, StarletteHTTPException):
        return APIError(err.status_code, str(err.detail))
    return APIError(500, f"internal error: {type(err).__name__}: {err}")


def _param_of(location: tuple) -> str | None:
    """`('body', 'messages', 0, 'role')` -> `messages[0].role`, OpenAI's way of naming a nested parameter."""
    parts = [p for p in location if p not in ("body", "query", "path")]
    name = ""
    for part in parts:
        if isinstance(part, int):
            name += f"[{part}]"
        elif not str(part).startswith(("function-after", "function-before", "tagged-union", "union")):
            name += ("." if name else "") + str(part)
    return name or None


def validation_error(err: RequestValidationError) -> APIError:
    problems = err.errors()
    first = problems[0] if problems else {"loc": (), "msg": "invalid request"}
    param = _param_of(tuple(first.get("loc", ())))
    if first.get("type") == "json_invalid":
        return invalid(f"the request body is not valid JSON: {first.get('msg')}")
    if first.get("type") == "extra_forbidden":  # OpenAI's wording for a field it does not know
        return invalid(f"Unrecognized request argument supplied: {param}", param=param)
    message = "; ".join(f"{_param_of(tuple(p.get('loc', ()))) or 'body'}: {p.get('msg')}" for p in problems[:5])
    return invalid(message, param=param)


def install_error_handlers(app: FastAPI) -> None:
    """One handler for every error class a route raises (all through `as_api_error`); `Exception` is the
    last resort for bugs (Starlette logs those)."""

    async def _handle(request: Request, err: Exception):
        return as_api_error(err).response(headers=getattr(err, "headers", None))

    for error_class in (
        APIError,
        RequestValidationError,
        StarletteHTTPException,  # routing 404/405 and any HTTPException
        *_domain_errors(),
        Exception,
    ):
        app.add_exception_handler(error_class, _handle)
