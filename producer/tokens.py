"""API tokens: who may call the HTTP service, for which tenant, with which scopes.

A token reads ``vfk_<id>_<secret>``. Only the id and a SHA-256 of the
secret are kept (hash ``voxfarm:api:tokens`` in the ledger's Redis, named
in ``shared.redis_keys``), so a leaked Redis dump grants nothing; the
secret is shown once, at creation. Checking compares digests in constant time, and an unknown id
costs the same comparison as a known one.

Scopes: ``read`` (jobs, progress, files, voices), ``submit`` (books,
speech, pause / resume / cancel / priority of the tenant's own jobs) and
``admin`` (everything, plus the farm's tenants). A token may carry its own
rate (requests per minute) and upload size limit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import redis

from shared.errors import BadInputError, BrokerError, NotFoundError
from shared.names import check_tenant
from shared.redis_keys import API_TOKENS, api_rate_key

SCOPES = ("read", "submit", "admin")
TOKEN_PREFIX = "vfk"
_TOKEN = re.compile(r"^vfk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_ID = re.compile(r"^[0-9a-f]{16}$")
_DUMMY_DIGEST = hashlib.sha256(b"voxfarm: no such token").hexdigest()


@dataclass(frozen=True)
class TokenRecord:
    """What the store keeps about a token: never the secret itself."""

    id: str
    tenant: str
    scopes: tuple[str, ...]
    name: str = ""
    created_at: float = 0.0
    rate_per_minute: int | None = None
    max_upload_bytes: int | None = None
    digest: str = field(default="", repr=False)

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def public(self) -> dict[str, object]:
        """The record without its digest: what `voxfarm tokens list` and the API show."""
        document = asdict(self)
        document.pop("digest")
        document["scopes"] = list(self.scopes)
        return document


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    wanted = tuple(dict.fromkeys(s.strip() for s in scopes if s.strip()))
    unknown = [s for s in wanted if s not in SCOPES]
    if not wanted or unknown:
        raise BadInputError(f"invalid scopes {list(wanted)!r}: choose from {', '.join(SCOPES)}")
    return wanted


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    """Tokens in Redis; every method raises BrokerError when Redis cannot be reached."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def create(
        self,
        tenant: str,
        scopes: Iterable[str],
        *,
        name: str = "",
        rate_per_minute: int | None = None,
        max_upload_bytes: int | None = None,
    ) -> tuple[str, TokenRecord]:
        """A new token and its record; the token string is returned here and never again."""
        check_tenant(tenant)
        if rate_per_minute is not None and rate_per_minute < 1:
            raise BadInputError(f"invalid rate {rate_per_minute}: at least 1 request per minute")
        if max_upload_bytes is not None and max_upload_bytes < 1024:
            raise BadInputError(f"invalid upload limit {max_upload_bytes}: at least 1024 bytes")
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        record = TokenRecord(
            id=token_id,
            tenant=tenant,
            scopes=check_scopes(scopes),
            name=name[:80],
            created_at=time.time(),
            rate_per_minute=rate_per_minute,
            max_upload_bytes=max_upload_bytes,
            digest=_digest(secret),
        )
        self._save(record)
        return f"{TOKEN_PREFIX}_{token_id}_{secret}", record

    def ensure(self, token: str, tenant: str, scopes: Iterable[str], *, name: str = "") -> TokenRecord:
        """Register a token made elsewhere (a deployment's Secret) under its own id; idempotent."""
        match = _TOKEN.match(token)
        if not match:
            raise BadInputError("invalid bootstrap token: expected vfk_<16 hex digits>_<43 URL-safe characters>")
        token_id, secret = match.groups()
        existing = self._load(token_id)
        if existing is not None and hmac.compare_digest(existing.digest, _digest(secret)):
            return existing
        record = TokenRecord(
            id=token_id,
            tenant=check_tenant(tenant),
            scopes=check_scopes(scopes),
            name=name,
            created_at=time.time(),
            digest=_digest(secret),
        )
        self._save(record)
        return record

    def _save(self, record: TokenRecord) -> None:
        try:
            self.redis.hset(API_TOKENS, record.id, json.dumps(asdict(record)))
        except redis.RedisError as exc:
            raise BrokerError(f"cannot store the token: {exc}; check VOXFARM_REDIS_URL") from exc

    def _load(self, token_id: str) -> TokenRecord | None:
        try:
            raw = self.redis.hget(API_TOKENS, token_id)
        except redis.RedisError as exc:
            raise BrokerError(f"cannot read tokens: {exc}; check VOXFARM_REDIS_URL") from exc
        if raw is None:
            return None
        fields = json.loads(raw)
        fields["scopes"] = tuple(fields["scopes"])
        return TokenRecord(**fields)

    def verify(self, token: str) -> TokenRecord | None:
        """The token's record if the token is genuine and not revoked; None otherwise (never why)."""
        match = _TOKEN.match(token)
        token_id, secret = match.groups() if match else ("", token)
        record = self._load(token_id) if token_id else None
        expected = record.digest if record is not None else _DUMMY_DIGEST
        genuine = hmac.compare_digest(_digest(secret), expected)
        return record if genuine and record is not None else None

    def list(self, tenant: str | None = None) -> list[TokenRecord]:
        try:
            raw = self.redis.hgetall(API_TOKENS)
        except redis.RedisError as exc:
            raise BrokerError(f"cannot read tokens: {exc}; check VOXFARM_REDIS_URL") from exc
        records = []
        for value in raw.values():
            fields = json.loads(value)
            fields["scopes"] = tuple(fields["scopes"])
            records.append(TokenRecord(**fields))
        return sorted((r for r in records if tenant is None or r.tenant == tenant), key=lambda r: r.created_at)

    def revoke(self, token_id: str) -> None:
        """Remove a token at once: its next request gets a 401."""
        if not _ID.match(token_id):
            raise BadInputError(f"invalid token id {token_id!r}: 16 hex digits, as `voxfarm tokens list` shows")
        try:
            removed = self.redis.hdel(API_TOKENS, token_id)
        except redis.RedisError as exc:
            raise BrokerError(f"cannot revoke the token: {exc}; check VOXFARM_REDIS_URL") from exc
        if not removed:
            raise NotFoundError(f"no token {token_id}; `voxfarm tokens list` shows the ids")

    def hit(self, token_id: str, limit_per_minute: int, now: float | None = None) -> float:
        """Count one request in the token's current minute; 0 if allowed, else seconds until the next minute."""
        now = time.time() if now is None else now
        minute = int(now // 60)
        key = api_rate_key(token_id, minute)
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, 120)
            count, _ = pipe.execute()
        except redis.RedisError as exc:
            raise BrokerError(f"cannot count requests: {exc}; check VOXFARM_REDIS_URL") from exc
        return 0.0 if int(count) <= limit_per_minute else (minute + 1) * 60 - now
