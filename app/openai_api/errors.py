"""Errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}}, for every /v1 failure.

Route code raises ApiError; FastAPI's own failures (unparsable JSON, schema violations,
unparsable multipart) are re-shaped here, so a client never sees FastAPI's default bodies.
"""

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

log = logging.getLogger(__name__)

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
}


class ApiError(Exception):
    """A request that is answered with an error; `message` is for the person who sent it."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.headers = headers or {}

    def body(self) -> dict:
        return error_body(self.status, self.message, self.code, self.param)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


class ClientGone(Exception):
    """The client disconnected before its answer was ready: nobody is left to answer."""


def error_body(status: int, message: str, code: str, param: str | None = None) -> dict:
    kind = TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_bytes(error: ApiError) -> bytes:
    return json.dumps(error.body()).encode()


def internal_error() -> ApiError:
    return ApiError(500, "the server failed to answer; the error was logged", "internal_error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, lambda request, error: error.response())
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)


def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    problems = error.errors()
    # the deepest location is the most specific ("content" fails as a string and as a list)
    first = max(
        problems,
        key=lambda p: len(p["loc"]),
        default={"type": "", "loc": (), "msg": "invalid request"},
    )
    if first["type"] == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "")
        return ApiError(
            400, f"the body is not valid JSON ({detail})".replace(" ()", ""), "invalid_json"
        ).response()
    if first["type"] == "missing" and tuple(first["loc"]) == ("body",):
        return ApiError(400, "the body is empty; send a JSON object", "invalid_json").response()
    param = parameter_path(first["loc"], getattr(error, "body", None))
    message = f"{param or 'the body'}: {first['msg']}"
    return ApiError(422, message, "invalid_value", param).response()


def _http_error(request: Request, error: HTTPException) -> JSONResponse:
    if error.status_code >= 500:
        log.error("HTTP %s on %s: %s", error.status_code, request.url.path, error.detail)
        return internal_error().response()
    code = {400: "invalid_body", 404: "not_found", 405: "method_not_allowed"}
    return ApiError(
        error.status_code, str(error.detail), code.get(error.status_code, "invalid_request")
    ).response()


def parameter_path(loc, body=None) -> str | None:
    """An error location -> the request's own path, e.g. "messages[0].content[1].image_url.url".

    Pydantic's locations also name union branches ("user", "str", "list[...]"); walking the
    location alongside the request body keeps only the steps that exist in it (and a missing
    field's name, which is last).
    """
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "header", "path"):
        parts = parts[1:]
    path, value = "", body
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if isinstance(part, int):
            path += f"[{part}]"
            value = value[part] if isinstance(value, list) and part < len(value) else None
        elif isinstance(value, dict) and part in value:
            path += f".{part}" if path else part
            value = value[part]
        elif (last or not isinstance(body, (dict, list))) and not _is_branch_name(part):
            path += f".{part}" if path else str(part)
    return path or None


def _is_branch_name(part: str) -> bool:
    """Whether `part` is how pydantic names a union's branch: str, list[...], function-after[...]."""
    return not part.isidentifier() or part in (
        "str",
        "int",
        "float",
        "bool",
        "list",
        "dict",
        "none",
    )
