"""Errors as values at the edge: every failure a client sees is {"error": {"code", "message"}} with a status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Match, Mount

from gateway.disconnects import CLIENT_CLOSED, log_disconnect
from gateway.error_codes import ErrorCode, status_of

log = logging.getLogger("faceplane.gateway")


class ApiError(Exception):
    """A failure the client sees; its HTTP status comes from the code's entry in the registry (an `ErrorCode`, or a
    service's code passed on as it came)."""

    def __init__(self, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status_of(code)
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


_HTTP_CODES = {
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
}
assert all(code.http_status == status for status, code in _HTTP_CODES.items())


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> str:
    """Every method some route of this path takes (RFC 9110's `Allow`): a path may have a route per method, so
    each method is tried against the routes (a mount, static files, takes GET and HEAD)."""
    scope = {**request.scope, "root_path": request.scope.get("app_root_path", "")}  # as the app's router saw it
    allowed: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Mount):
            if route.matches(scope)[0] is not Match.NONE:
                allowed |= {"GET", "HEAD"}
            continue
        allowed |= {m for m in _METHODS if route.matches({**scope, "method": m})[0] is Match.FULL}
    return ", ".join(m for m in _METHODS if m in allowed)


def client_closed(request: Request) -> Response:
    """The client left while its body was still coming: not an error of ours (gateway/disconnects.py)."""
    log_disconnect(request.scope, "reading the body")
    return Response(status_code=CLIENT_CLOSED)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            why = first.get("ctx", {}).get("error", "malformed")
            return error_response(400, ErrorCode.INVALID_JSON, f"the body is not valid JSON: {why}")
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(422, ErrorCode.INVALID_REQUEST, f"{where}: {first.get('msg', 'invalid value')}")

    @app.exception_handler(ClientDisconnect)
    async def disconnected(request: Request, _: ClientDisconnect) -> Response:
        return client_closed(request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        from gateway.limits import BodyTooLarge  # gateway.limits imports this module

        # FastAPI turns any failure to read a model's JSON body into a 400; what failed is its cause.
        cause = exc.__cause__
        if isinstance(cause, ClientDisconnect):
            return client_closed(request)
        if exc.status_code == 400 and isinstance(cause, ValueError):  # e.g. an integer over Python's 4,300 digits
            return error_response(400, ErrorCode.INVALID_JSON, f"the body is not valid JSON: {cause}")
        if isinstance(cause, BodyTooLarge):
            raise cause  # BodySizeLimit answers it with 413
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return error_response(
            exc.status_code, _HTTP_CODES.get(exc.status_code, ErrorCode.HTTP_ERROR), str(exc.detail), headers or None
        )

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, ErrorCode.INTERNAL_ERROR, "the server failed to handle the request")
