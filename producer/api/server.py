"""`voxfarm api`: the service on uvicorn, one process, with a graceful stop on SIGTERM."""

from __future__ import annotations

import logging

import uvicorn

from producer.api.app import create_app
from producer.api.farm import Farm
from shared.settings import Settings

log = logging.getLogger(__name__)


def serve_api(settings: Settings, *, host: str | None = None, port: int | None = None, farm: Farm | None = None) -> int:
    app = create_app(settings, farm)
    # Jobs registered by an older voxfarm are in no tenant's index yet; cheap, and a no-op afterwards.
    app.state.farm.operations.ledger.index_tenants()
    if settings.api_bootstrap_token is not None:
        bootstrap = app.state.farm.tokens.ensure(
            settings.api_bootstrap_token.get_secret_value(), "default", ["admin"], name="bootstrap"
        )
        log.info("bootstrap admin token %s registered", bootstrap.id)
    config = uvicorn.Config(
        app,
        host=host or settings.api_host,
        port=settings.api_port if port is None else port,
        proxy_headers=settings.api_forwarded_allow_ips is not None,
        forwarded_allow_ips=settings.api_forwarded_allow_ips,
        server_header=False,
        log_config=None,
        access_log=False,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
        h11_max_incomplete_event_size=16 * 1024,
    )
    server = uvicorn.Server(config)
    server.run()
    return 0
