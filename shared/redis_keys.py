"""Every Redis key name voxfarm builds, in one place.

Both sides share one Redis with Celery, so the names live under one prefix
and are spelled once: a reader (the exporter, ``voxfarm status``) and a
writer (the ledger, a worker) can never drift apart. kombu's own keys (queue
lists, bindings, unacked messages) are kombu's; see ``shared.kombu_layout``.

    voxfarm:jobs                          set of known job ids
    voxfarm:tenant:<name>:jobs            set of the job ids of one tenant (what the HTTP API lists)
    voxfarm:job:<id>:<part>               the ledger of one job (``JobPart``)
    voxfarm:worker-faults:<segment key>   deliveries of a segment that took a worker down
    voxfarm:lock:resume:<id>              one reconciler resumes a job at a time
    voxfarm:lock:plan:<id>                one control replica plans a submitted request at a time
    voxfarm:qwen3:prompt-lock:<key>       one worker computes a clone prompt at a time
    voxfarm:api:tokens                    hash: API token id -> JSON {tenant, scopes, limits, SHA-256 of the secret}
    voxfarm:api:rate:<token id>:<minute>  counter: the token's requests in that minute (expires)
"""

from __future__ import annotations

from typing import Literal

PREFIX = "voxfarm"
JOBS = f"{PREFIX}:jobs"

JobPart = Literal["meta", "done", "failed", "sent", "quality"]
"""meta: hash of job fields; done: set of finished indexes; failed: index -> reason; sent: index -> enqueue time;
quality: index -> findings of takes kept after failing the quality gate."""


def tenant_jobs_key(tenant: str) -> str:
    """The tenant's job ids; the caller has checked the name (``shared.names.check_tenant``)."""
    return f"{PREFIX}:tenant:{tenant}:jobs"


def job_key(job: str, part: JobPart) -> str:
    """One part of a job's ledger; the caller has checked the job id (``shared.names.check_job_id``)."""
    return f"{PREFIX}:job:{job}:{part}"


API_TOKENS = f"{PREFIX}:api:tokens"


def api_rate_key(token_id: str, minute: int) -> str:
    return f"{PREFIX}:api:rate:{token_id}:{minute}"


def worker_faults_key(segment_key: str) -> str:
    return f"{PREFIX}:worker-faults:{segment_key}"


def resume_lock_key(job: str) -> str:
    return f"{PREFIX}:lock:resume:{job}"


def plan_lock_key(job: str) -> str:
    return f"{PREFIX}:lock:plan:{job}"


def document_lock_key(path: str) -> str:
    """Held while a document in storage is read, changed and written back (``shared.locks``)."""
    return f"{PREFIX}:lock:document:{path}"


def prompt_lock_key(prompt_key: str) -> str:
    return f"{PREFIX}:qwen3:prompt-lock:{prompt_key}"


# --- the scheduler: an index over the ledger and the stored plans, rebuilt when lost ---------------
#     voxfarm:sched:active            set of job ids the dispatcher considers (queued, rendering, paused)
#     voxfarm:sched:wake              list: a push wakes the dispatcher at once (submit, operations)
#     voxfarm:sched:lease             string ``<holder>|<token>`` with a TTL: who may dispatch
#     voxfarm:sched:fence             counter: the last fencing token handed out
#     voxfarm:sched:tenants           hash: tenant -> JSON {weight, quota}
#     voxfarm:sched:consumers         sorted set: worker hostname -> expiry time of its presence
#     voxfarm:sched:consumer:<host>   string (JSON): a worker's model and items per engine call, with a TTL
#     voxfarm:sched:stats             hash: the dispatcher's last cycle (cycle seconds, holder, pending, starved)
#     voxfarm:sched:dispatched        hash: ``<tenant>|<priority>`` -> estimated audio seconds dispatched

SCHED = f"{PREFIX}:sched"
SCHED_ACTIVE = f"{SCHED}:active"
SCHED_WAKE = f"{SCHED}:wake"
SCHED_LEASE = f"{SCHED}:lease"
SCHED_FENCE = f"{SCHED}:fence"
SCHED_TENANTS = f"{SCHED}:tenants"
SCHED_CONSUMERS = f"{SCHED}:consumers"
SCHED_STATS = f"{SCHED}:stats"
SCHED_DISPATCHED = f"{SCHED}:dispatched"


def consumer_key(hostname: str) -> str:
    return f"{SCHED}:consumer:{hostname}"
