"""`voxfarm api`, `voxfarm serve` and `voxfarm tokens`: the HTTP service and who may call it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from producer.console import print_json
from shared.settings import Settings


def add_api_parsers(sub: Any) -> None:
    api = sub.add_parser("api", help="run the HTTP API and web console (needs VOXFARM_REDIS_URL and storage)")
    api.add_argument("--host", help="address to listen on (default: VOXFARM_API_HOST or 127.0.0.1)")
    api.add_argument("--port", type=int, help="port (default: VOXFARM_API_PORT or 8080)")

    serve = sub.add_parser("serve", help="a whole farm on this machine with the API and console on 127.0.0.1")
    serve.add_argument("--port", type=int, help="port (default: VOXFARM_API_PORT or 8080; 0 = any free port)")
    serve.add_argument("--workers", type=int, help="local worker processes (default: one per CPU core)")

    tokens = sub.add_parser("tokens", help="API tokens: create, list, revoke")
    token_sub = tokens.add_subparsers(dest="tokens_command", metavar="create|list|revoke", required=True)
    create = token_sub.add_parser("create", help="create a token and print it (shown only once)")
    create.add_argument("--tenant", default="default", help="the tenant whose jobs the token reaches (default)")
    create.add_argument("--scopes", default="read,submit", help="comma-separated: read, submit, admin (read,submit)")
    create.add_argument("--name", default="", help="a note to recognise the token by")
    create.add_argument("--rate", type=int, help="requests per minute (default: VOXFARM_API_RATE_PER_MINUTE)")
    create.add_argument(
        "--max-upload-mb", type=float, help="largest upload in MiB (default: VOXFARM_API_MAX_UPLOAD_BYTES)"
    )
    create.add_argument("--json", action="store_true")
    listing = token_sub.add_parser("list", help="tokens (ids, tenants, scopes; never the secrets)")
    listing.add_argument("--tenant", help="only this tenant's tokens")
    listing.add_argument("--json", action="store_true")
    revoke = token_sub.add_parser("revoke", help="revoke a token at once")
    revoke.add_argument("id", help="the token id, as `voxfarm tokens list` shows it")


def _store(settings: Settings) -> Any:
    from producer.tokens import TokenStore
    from shared.ledger import Ledger

    ledger = Ledger.from_settings(settings)
    ledger.ping()
    return TokenStore(ledger.redis)


def tokens(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(settings)
    if args.tokens_command == "create":
        limit = int(args.max_upload_mb * 2**20) if args.max_upload_mb else None
        token, record = store.create(
            args.tenant, args.scopes.split(","), name=args.name, rate_per_minute=args.rate, max_upload_bytes=limit
        )
        if args.json:
            print_json({"token": token, **record.public()})
        else:
            print(token)
            print(f"token {record.id} for tenant {record.tenant}: {','.join(record.scopes)}", file=sys.stderr)
        return 0
    if args.tokens_command == "revoke":
        store.revoke(args.id)
        print(f"token {args.id} revoked", file=sys.stderr)
        return 0
    found = store.list(args.tenant)
    if args.json:
        print_json([r.public() for r in found])
        return 0
    for record in found:
        print(f"{record.id}  {record.tenant:24s} {','.join(record.scopes):18s} {record.name}")
    return 0


def api(args: argparse.Namespace, settings: Settings) -> int:
    from producer.api.server import serve_api

    return serve_api(settings, host=args.host, port=args.port)


def serve(args: argparse.Namespace, settings: Settings) -> int:
    """The embedded farm of `voxfarm render`, kept up, with the API and console in front of it."""
    from producer.api.server import serve_api
    from producer.embedded import free_port, local_farm
    from producer.tokens import TokenStore
    from shared.ledger import Ledger

    port = settings.api_port if args.port is None else args.port
    port = port or free_port()
    print("starting a local farm (Redis, workers, control)...", file=sys.stderr)
    with local_farm(workers=args.workers) as (redis_url, _farm):
        local = settings.model_copy(update={"redis_url": redis_url})
        token, _ = TokenStore(Ledger.from_url(redis_url).redis).create("default", ["admin"], name="voxfarm serve")
        print(f"voxfarm console: http://127.0.0.1:{port}/console/")
        print(f"admin token:     {token}")
        sys.stdout.flush()
        return serve_api(local, host="127.0.0.1", port=port)
