"""The one error helper of `forge serve`: every error answer, OpenAI route or Forge route, has OpenAI's shape

    {"error": {"message": str, "type": str, "param": str | None, "code": str | None}}

with the status codes OpenAI uses (400 bad request, 401/403 access, 404 not found, 409 conflict, 413 too large,
429 rate limit, 500/502/503 server side), so the official SDK raises its matching exception class
(BadRequestError, NotFoundError, ...) with `param` and `code` filled in.
"""

from __future__ import annotations

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


def model_not_found(model: str, why: str = "") -> APIError:
    return APIError(
        404,
        f"The model '{model}' does not exist{': ' + why if why else ''}. "
        "GET /v1/models lists the ones this server can answer with.",
        param="model",
        code="model_not_found",
    )


def no_model(err: Exception) -> APIError:
    return APIError(503, f"no model is being served: {err}", code="model_not_loaded")


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
    @app.exception_handler(APIError)
    async def _api_error(request: Request, err: APIError):
        return err.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, err: RequestValidationError):
        return validation_error(err).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException):  # routing 404/405 and any HTTPException
        return APIError(err.status_code, str(err.detail)).response(headers=getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception):
        return APIError(500, f"internal error: {type(err).__name__}: {err}").response()
