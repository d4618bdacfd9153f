"""Who is calling: a bearer token per tenant, its scopes, and its request rate.

The token comes in the ``Authorization: Bearer`` header. The console also
signs in once (``POST /v1/session``) to get the same token as an HttpOnly,
SameSite=Strict cookie, which is honoured for GET and HEAD only: audio
elements and event streams cannot send headers, and a request that changes
anything must carry the header, so a forged cross-site form changes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from producer.api.farm import Farm
from producer.tokens import TokenRecord

COOKIE = "voxfarm_token"
_SAFE_METHODS = ("GET", "HEAD")


@dataclass(frozen=True)
class Caller:
    token: TokenRecord

    @property
    def tenant(self) -> str:
        return self.token.tenant


@dataclass
class OpenRequests:
    """Requests each token holds open in this process: event streams and speech waits, which poll while open.

    The rate limit counts a request when it starts; this bounds what a token
    keeps open, so one client cannot fill the service's thread pool with
    polls. Per process: each API replica keeps its own count.
    """

    limit: int
    _open: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, caller: Caller) -> None:
        """Count one more open request of the caller's token, or answer 429 if it holds its limit."""
        token = caller.token.id
        with self._lock:
            if self._open.get(token, 0) >= self.limit:
                raise HTTPException(
                    429,
                    f"this token already holds {self.limit} event streams or speech requests open; "
                    "close one, or wait for it to end",
                    headers={"Retry-After": "5"},
                )
            self._open[token] = self._open.get(token, 0) + 1

    def give_back(self, caller: Caller) -> None:
        token = caller.token.id
        with self._lock:
            left = self._open.pop(token, 1) - 1
            if left > 0:
                self._open[token] = left

    @contextmanager
    def held(self, caller: Caller) -> Iterator[None]:
        self.take(caller)
        try:
            yield
        finally:
            self.give_back(caller)


def open_requests(request: Request) -> OpenRequests:
    held: OpenRequests = request.app.state.open_requests
    return held


def farm_of(request: Request) -> Farm:
    farm: Farm = request.app.state.farm
    return farm


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": 'Bearer realm="voxfarm"'})


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise _unauthorized("use 'Authorization: Bearer <token>'")
        return value.strip()
    if request.method in _SAFE_METHODS:
        return request.cookies.get(COOKIE)
    return None


async def authenticate(request: Request) -> Caller:
    """The caller's token, checked, and its request counted against its rate."""
    token = bearer_token(request)
    if not token:
        raise _unauthorized("an API token is required: 'Authorization: Bearer <token>' (`voxfarm tokens create`)")
    if len(token) > 200:
        raise _unauthorized("invalid or revoked token")
    farm = farm_of(request)
    record = await run_in_threadpool(farm.tokens.verify, token)
    if record is None:
        raise _unauthorized("invalid or revoked token")
    limit = record.rate_per_minute or farm.settings.api_rate_per_minute
    wait_s = await run_in_threadpool(farm.tokens.hit, record.id, limit)
    if wait_s > 0:
        raise HTTPException(
            429,
            f"rate limit of {limit} requests per minute reached; try again in {wait_s:.0f} s",
            headers={"Retry-After": str(max(int(wait_s + 0.999), 1))},
        )
    return Caller(record)


Authenticated = Annotated[Caller, Depends(authenticate)]


def require(scope: str) -> Callable[..., object]:
    """A dependency that lets through tokens with ``scope`` (admin tokens have every scope)."""

    async def check(caller: Authenticated) -> Caller:
        if not caller.token.allows(scope):
            raise HTTPException(403, f"this token lacks the {scope!r} scope")
        return caller

    return check


def check_caller_may_schedule(caller: Caller, farm: Farm, *, priority: int, lane: str = "bulk") -> None:
    """Priorities and lanes rank ahead of tenant weights: above the farm's limit they are the operators' to give."""
    if caller.token.allows("admin"):
        return
    if lane != "bulk":
        raise HTTPException(403, f"the {lane} lane is for POST /v1/audio/speech; books go on the bulk lane")
    if priority > farm.settings.api_max_priority:
        raise HTTPException(
            403,
            f"priority {priority} is above this farm's limit for tenants, {farm.settings.api_max_priority}; "
            "an operator can raise VOXFARM_API_MAX_PRIORITY or set it with an admin token",
        )


Reader = Annotated[Caller, Depends(require("read"))]
Submitter = Annotated[Caller, Depends(require("submit"))]
Admin = Annotated[Caller, Depends(require("admin"))]
