"""Tenants: who shares the farm, with what weight, and how much work each may have in flight.

They live in Redis (hash ``voxfarm:sched:tenants``) for the dispatcher to
read every cycle, and in storage (``control/tenants.json``) so a Redis that
loses its data loses no setting; the ``tenants`` setting (Helm values)
seeds both when neither has any.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import redis

from shared.errors import BadInputError, BrokerError, NotFoundError
from shared.locks import changing
from shared.names import check_tenant
from shared.redis_keys import SCHED_TENANTS
from shared.settings import Settings
from shared.storage import Storage

TENANTS_FILE = "control/tenants.json"


@dataclass(frozen=True)
class Tenant:
    name: str
    weight: float = 1.0
    quota: int | None = None
    """Most segments in flight at once; None: no limit."""


def check_weight(weight: float) -> float:
    if not 0 < weight <= 1000:
        raise BadInputError(f"invalid weight {weight!r}: use a number above 0 and at most 1000")
    return float(weight)


def check_quota(quota: int | None) -> int | None:
    if quota is not None and quota < 1:
        raise BadInputError(f"invalid quota {quota!r}: use a whole number of segments of at least 1, or none")
    return quota


def _decode(name: str, raw: str | bytes) -> Tenant:
    fields = json.loads(raw)
    quota = fields.get("quota")
    return Tenant(name, float(fields.get("weight", 1.0)), int(quota) if quota else None)


def _encode(tenant: Tenant) -> str:
    return json.dumps({"weight": tenant.weight, "quota": tenant.quota})


def read_tenants(client: redis.Redis) -> dict[str, Tenant]:
    try:
        raw = client.hgetall(SCHED_TENANTS)
    except redis.RedisError as exc:
        raise BrokerError(f"cannot read tenants: {exc}; check VOXFARM_REDIS_URL") from exc
    found = {}
    for key, value in raw.items():
        name = key.decode() if isinstance(key, bytes) else str(key)
        found[name] = _decode(name, value)
    return found


def stored_tenants(storage: Storage) -> dict[str, Tenant]:
    try:
        document = json.loads(storage.get_bytes(TENANTS_FILE))
    except (NotFoundError, ValueError):
        return {}
    return {name: _decode(name, json.dumps(fields)) for name, fields in document.items()}


def _save(storage: Storage, tenants: dict[str, Tenant]) -> None:
    document = {t.name: {"weight": t.weight, "quota": t.quota} for t in tenants.values()}
    storage.put_bytes(TENANTS_FILE, json.dumps(document, indent=1).encode(), "application/json")


def set_tenant(client: redis.Redis, storage: Storage, name: str, *, weight: float | None, quota: int | None) -> Tenant:
    """Create or change a tenant; quota 0 clears its limit. Storage first, then Redis."""
    check_tenant(name)
    with changing(client, TENANTS_FILE):  # two admins setting two tenants at once must both be kept
        tenants = stored_tenants(storage) or read_tenants(client)
        current = tenants.get(name, Tenant(name))
        updated = Tenant(
            name,
            check_weight(weight) if weight is not None else current.weight,
            current.quota if quota is None else (check_quota(quota) if quota > 0 else None),
        )
        tenants[name] = updated
        _save(storage, tenants)
        try:
            client.hset(SCHED_TENANTS, name, _encode(updated))  # in the same order as storage
        except redis.RedisError as exc:
            raise BrokerError(f"cannot write tenants: {exc}; check VOXFARM_REDIS_URL") from exc
    return updated


def ensure_tenants(client: redis.Redis, storage: Storage, settings: Settings) -> dict[str, Tenant]:
    """The tenants in Redis, restored from storage or seeded from settings when Redis has none."""
    tenants = read_tenants(client)
    if tenants:
        return tenants
    tenants = stored_tenants(storage)
    if not tenants:
        tenants = {
            name: Tenant(check_tenant(name), check_weight(float(v.get("weight", 1.0))), check_quota(_quota(v)))
            for name, v in settings.tenants.items()
        }
        if tenants:
            _save(storage, tenants)
    if tenants:
        client.hset(SCHED_TENANTS, mapping={t.name: _encode(t) for t in tenants.values()})
    return tenants


def _quota(values: dict[str, float]) -> int | None:
    quota = values.get("quota")
    return int(quota) if quota else None


def as_dict(tenant: Tenant) -> dict[str, object]:
    return asdict(tenant)
