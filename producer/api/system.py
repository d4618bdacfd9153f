"""Health, readiness, metrics, voices, tenants and the console's sign-in."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from producer.api.auth import COOKIE, Admin, Authenticated, Reader, farm_of
from producer.api.farm import Farm
from producer.api.models import TenantIn
from producer.fairshare import MAX_PRIORITY
from producer.tenants import as_dict
from producer.tokens import TokenRecord
from shared.errors import RetryableError

router = APIRouter()


@router.get("/healthz", tags=["system"], summary="the process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", tags=["system"], summary="Redis and storage answer")
async def readyz(request: Request) -> dict[str, str]:
    try:
        await run_in_threadpool(farm_of(request).ready)
    except RetryableError:
        raise HTTPException(503, "not ready: Redis or storage does not answer") from None
    return {"status": "ready"}


@router.get("/metrics", tags=["system"], summary="Prometheus metrics of this service")
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/me", tags=["auth"], summary="the calling token: tenant, scopes, limits")
def me(caller: Authenticated, request: Request) -> dict[str, Any]:
    return _described(caller.token, farm_of(request))


class SignIn(BaseModel):
    token: str = Field(min_length=1, max_length=200)


@router.post("/v1/session", tags=["auth"], summary="sign the console in: the token as an HttpOnly cookie")
async def sign_in(body: SignIn, request: Request, response: Response) -> dict[str, Any]:
    record = await run_in_threadpool(farm_of(request).tokens.verify, body.token)
    if record is None:
        raise HTTPException(401, "invalid or revoked token", {"WWW-Authenticate": 'Bearer realm="voxfarm"'})
    response.set_cookie(
        COOKIE,
        body.token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/v1",
        max_age=12 * 3600,
    )
    return _described(record, farm_of(request))


def _described(record: TokenRecord, farm: Farm) -> dict[str, Any]:
    """The token as its holder sees it, with the highest priority it may give (`check_caller_may_schedule`)."""
    highest = MAX_PRIORITY if record.allows("admin") else farm.settings.api_max_priority
    return {**record.public(), "max_priority": highest}


@router.delete("/v1/session", tags=["auth"], summary="sign the console out")
def sign_out(response: Response) -> dict[str, str]:
    response.delete_cookie(COOKIE, path="/v1")
    return {"status": "signed out"}


@router.get("/v1/voices", tags=["voices"], summary="the voices this farm can use")
async def voices(request: Request, caller: Reader) -> list[dict[str, Any]]:
    return await run_in_threadpool(farm_of(request).voices)


@router.get("/v1/tenants", tags=["tenants"], summary="who shares the farm: weights and quotas")
async def tenants(request: Request, caller: Admin) -> list[dict[str, Any]]:
    return [as_dict(t) for t in await run_in_threadpool(farm_of(request).tenants)]


@router.put("/v1/tenants/{name}", tags=["tenants"], summary="create or change a tenant")
async def set_tenant(name: str, body: TenantIn, request: Request, caller: Admin) -> dict[str, Any]:
    tenant = await run_in_threadpool(farm_of(request).set_tenant, name, weight=body.weight, quota=body.quota)
    return as_dict(tenant)
