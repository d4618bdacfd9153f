"""voxfarm's error hierarchy as HTTP status codes, with a message and nothing internal.

Bad input is the caller's to fix and keeps its message, less any location
inside the farm (400; 404 for what does not exist, 409 for a job whose state
forbids the request, 415 for a format not read). A farm service that cannot be
reached is a 503 whose message names no host, bucket or credential.
"""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from shared.errors import (
    BadInputError,
    ConflictError,
    NotFoundError,
    RetryableError,
    UnsupportedFormatError,
    VoxfarmError,
)

log = logging.getLogger(__name__)

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\";,)]*")
_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s/'\"]+/)+[^\s/'\";:,)]*")


def redacted(message: str) -> str:
    """A message for a tenant: URLs (hosts, buckets, credentials) and server paths removed.

    Farm messages are written for operators and name where things are; what a
    tenant reads keeps the words and drops the locations.
    """
    return _PATH.sub("<path>", _URL.sub("<farm>", message))


def error_response(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(VoxfarmError)
    async def voxfarm_error(request: Request, exc: VoxfarmError) -> JSONResponse:
        if isinstance(exc, NotFoundError):
            return error_response(404, "not_found", redacted(str(exc)))
        if isinstance(exc, ConflictError):
            return error_response(409, "conflict", redacted(str(exc)))
        if isinstance(exc, UnsupportedFormatError):
            return error_response(415, "unsupported_format", redacted(str(exc)))
        if isinstance(exc, BadInputError):
            return error_response(400, "bad_input", redacted(str(exc)))
        log.warning("%s %s failed: %s", request.method, request.url.path, exc)
        if isinstance(exc, RetryableError):
            return error_response(
                503, "unavailable", "a farm service is unreachable; try again shortly", {"Retry-After": "5"}
            )
        return error_response(500, "internal", "the farm failed; the operators have the details in the logs")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, "request", str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in exc.errors()[:10]
        )
        return error_response(422, "invalid", problems)
