"""The app factory: routes, middleware and the console, around one Farm."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from producer.api import events, files, jobs, speech, submissions, system
from producer.api.auth import OpenRequests
from producer.api.errors import install_error_handlers
from producer.api.farm import Farm
from producer.api.limits import BodyLimits
from producer.api.metrics import ApiMetrics, MetricsMiddleware
from shared.settings import Settings

STATIC = Path(__file__).parent / "static"
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; media-src 'self' blob:; style-src 'self'; "
        b"script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
]


class SecurityHeaders:
    """Headers that keep the console from being framed, sniffed or made to run foreign scripts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in _SECURITY_HEADERS if k not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def create_app(settings: Settings, farm: Farm | None = None) -> FastAPI:
    """The service; ``farm`` defaults to one built from ``settings`` (Redis and storage are checked now)."""
    app = FastAPI(
        title="voxfarm",
        version="1",
        summary="A distributed text-to-speech render farm: books in, chaptered audiobooks out.",
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    app.state.farm = farm or Farm.from_settings(settings)
    app.state.metrics = ApiMetrics()
    app.state.open_requests = OpenRequests(settings.api_open_requests_per_token)
    install_error_handlers(app)
    for module in (system, submissions, jobs, events, files, speech):
        app.include_router(module.router)
    app.mount("/console", StaticFiles(directory=STATIC, html=True), name="console")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/console/")

    if settings.api_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api_cors_origins,
            allow_methods=["GET", "HEAD", "POST", "PUT"],
            allow_headers=["Authorization", "Content-Type", "Range"],
            expose_headers=["Content-Range", "Accept-Ranges", "Content-Length"],
        )
    app.add_middleware(
        BodyLimits, idle_timeout_s=settings.api_upload_idle_timeout_s, total_timeout_s=settings.api_upload_timeout_s
    )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app
