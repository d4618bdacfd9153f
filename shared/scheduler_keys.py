"""Every Redis key name of the scheduler, in one place.

The dispatcher keeps nothing that cannot be rebuilt: these keys are an
index over the ledger and the stored plans, so losing them costs one
rebuild, never a segment.

Keys (``voxfarm:sched:...``):
    active            set of job ids the dispatcher should consider (queued, rendering, paused)
    wake              list: a push wakes the dispatcher at once (submit, operations)
    lease             string ``<holder>|<token>`` with a TTL: who may dispatch
    fence             counter: the last fencing token handed out
    tenants           hash: tenant -> JSON {weight, quota}
    consumers         sorted set: worker hostname -> expiry time of its presence
    consumer:<host>   string (JSON): the worker's model and items per engine call per bucket, with a TTL
    stats             hash: the dispatcher's last cycle (cycle seconds, holder, pending per tenant/priority)
    dispatched        hash: ``<tenant>|<priority>`` -> estimated audio seconds dispatched (a counter)
"""

from __future__ import annotations

from shared.names import check_job_id

PREFIX = "voxfarm:sched"
ACTIVE_KEY = f"{PREFIX}:active"
WAKE_KEY = f"{PREFIX}:wake"
LEASE_KEY = f"{PREFIX}:lease"
FENCE_KEY = f"{PREFIX}:fence"
TENANTS_KEY = f"{PREFIX}:tenants"
CONSUMERS_KEY = f"{PREFIX}:consumers"
STATS_KEY = f"{PREFIX}:stats"
DISPATCHED_KEY = f"{PREFIX}:dispatched"


def consumer_key(hostname: str) -> str:
    return f"{PREFIX}:consumer:{hostname}"


def job_meta_key(job: str) -> str:
    """The ledger's meta hash of a job (owned by shared.ledger; named here for the dispatch script)."""
    return f"voxfarm:job:{check_job_id(job)}:meta"


def job_sent_key(job: str) -> str:
    """The ledger's hash of segments in flight (index -> time sent)."""
    return f"voxfarm:job:{check_job_id(job)}:sent"
