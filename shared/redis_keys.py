"""Every Redis key name voxfarm builds, in one place.

Both sides share one Redis with Celery, so the names live under one prefix
and are spelled once: a reader (the exporter, ``voxfarm status``) and a
writer (the ledger, a worker) can never drift apart. kombu's own keys (queue
lists, bindings, unacked messages) are kombu's; see ``shared.kombu_layout``.

    voxfarm:jobs                          set of known job ids
    voxfarm:job:<id>:<part>               the ledger of one job (``JobPart``)
    voxfarm:worker-faults:<segment key>   deliveries of a segment that took a worker down
    voxfarm:lock:resume:<id>              one reconciler resumes a job at a time
    voxfarm:qwen3:prompt-lock:<key>       one worker computes a clone prompt at a time
"""

from __future__ import annotations

from typing import Literal

PREFIX = "voxfarm"
JOBS = f"{PREFIX}:jobs"

JobPart = Literal["meta", "done", "failed", "sent", "quality"]
"""meta: hash of job fields; done: set of finished indexes; failed: index -> reason; sent: index -> enqueue time;
quality: index -> findings of takes kept after failing the quality gate."""


def job_key(job: str, part: JobPart) -> str:
    """One part of a job's ledger; the caller has checked the job id (``shared.names.check_job_id``)."""
    return f"{PREFIX}:job:{job}:{part}"


def worker_faults_key(segment_key: str) -> str:
    return f"{PREFIX}:worker-faults:{segment_key}"


def resume_lock_key(job: str) -> str:
    return f"{PREFIX}:lock:resume:{job}"


def prompt_lock_key(prompt_key: str) -> str:
    return f"{PREFIX}:qwen3:prompt-lock:{prompt_key}"
