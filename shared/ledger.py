"""The job ledger in Redis: what each job needs, what is done, what failed.

Both sides write it: the producer creates a job and marks reused segments,
workers mark segments done after their audio is stored, and the last mark
flips the job to ``assembling`` atomically (one Lua script), so exactly one
caller enqueues assembly however many workers finish at once.

The ledger is a fast index, not the source of truth: storage holds the plan
and the audio, so a ledger lost with its Redis is rebuilt by ``resume``.

Keys (named in ``shared.redis_keys``: ``voxfarm:job:<id>:<part>``):
    meta     hash: title, voice, engine, model, total, reused, state, timestamps, counters,
             tenant, priority, lane, gen (changed to make the dispatcher reload the job)
    done     set of finished segment indexes
    failed   hash: segment index -> JSON {reason, attempts, at}
    sent     hash: segment index -> last enqueue time (what is in flight)
    quality  hash: segment index -> JSON {attempts, findings} of takes kept after failing the quality gate
and ``voxfarm:jobs`` (set of known job ids), ``voxfarm:tenant:<name>:jobs`` (the ids of one tenant).
Ids of jobs whose keys have expired are pruned from both sets when a listing finds them gone.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast

import redis

from shared.errors import BrokerError, NotFoundError
from shared.names import check_job_id, check_tenant
from shared.redis_keys import JOBS, SCHED_ACTIVE, job_key, tenant_jobs_key
from shared.settings import Settings

FINISHED_TTL_S = 14 * 24 * 3600


class JobState(StrEnum):
    PLANNING = "planning"
    """Submitted as a request; the control plane is phonemising it (``producer/deferred.py``)."""
    QUEUED = "queued"
    """Registered; the dispatcher has not sent any of its work yet."""
    RENDERING = "rendering"
    PAUSED = "paused"
    """Nothing more is dispatched; what workers receive is handed back until the job is resumed."""
    CANCELLED = "cancelled"
    """Nothing more is dispatched or synthesised; what is stored stays stored."""
    ASSEMBLING = "assembling"
    DONE = "done"
    FAILED = "failed"


#: States in which the dispatcher still owes the job work (or may again, after a resume).
SCHEDULED_STATES = (JobState.QUEUED, JobState.RENDERING, JobState.PAUSED)
#: States of a job that is still under way: it is followed or resumed, never submitted over.
LIVE_STATES = (JobState.PLANNING, JobState.QUEUED, JobState.RENDERING, JobState.PAUSED, JobState.ASSEMBLING)
#: States no operation can change any more.
FINAL_STATES = (JobState.DONE, JobState.CANCELLED)


#: Marks indexes done; flips rendering -> assembling when every segment is done, or -> failed when every
#: segment is done or failed and some failed (the last to finish may be a success: _MARK_FAILED's mirror).
#: Returns {newly_done, done, total, transitioned(1/0), known(1/0)}.
_MARK_DONE = """
local meta, done, failed = KEYS[1], KEYS[2], KEYS[3]
if redis.call('HEXISTS', meta, 'total') == 0 then return {0, 0, 0, 0, 0} end
local added = 0
for i = 1, #ARGV - 1 do
  added = added + redis.call('SADD', done, ARGV[i])
  redis.call('HDEL', failed, ARGV[i])
end
redis.call('HSET', meta, 'updated_at', ARGV[#ARGV])
local n = redis.call('SCARD', done)
local total = tonumber(redis.call('HGET', meta, 'total'))
local moved = 0
if n >= total then
  local state = redis.call('HGET', meta, 'state')
  if state == 'rendering' or state == 'failed' or state == 'queued' or state == 'paused' then
    redis.call('HSET', meta, 'state', 'assembling')
    moved = 1
  end
elseif added > 0 and n + redis.call('HLEN', failed) >= total then
  local state = redis.call('HGET', meta, 'state')
  if state == 'rendering' or state == 'queued' or state == 'paused' then
    redis.call('HSET', meta, 'state', 'failed')
  end
end
return {added, n, total, moved, 1}
"""

#: Records a failure unless the segment is already done, and ends its time in flight (the dispatcher counts
#: what is sent against quotas); returns 1 if recorded.
_MARK_FAILED = """
local meta, done, failed, sent = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('HEXISTS', meta, 'total') == 0 then return 0 end
local recorded = 0
for i = 1, #ARGV - 1 do
  if redis.call('SISMEMBER', done, ARGV[i]) == 0 then
    redis.call('HSET', failed, ARGV[i], ARGV[#ARGV])
    redis.call('HDEL', sent, ARGV[i])
    recorded = 1
  end
end
if recorded == 1 then
  local n = redis.call('SCARD', done) + redis.call('HLEN', failed)
  local state = redis.call('HGET', meta, 'state')
  local live = state == 'rendering' or state == 'queued' or state == 'paused'
  if n >= tonumber(redis.call('HGET', meta, 'total')) and live then
    redis.call('HSET', meta, 'state', 'failed')
  end
end
return recorded
"""


#: Records (or, with an empty record, clears) one segment's quality findings and keeps the count in meta.
_RECORD_QUALITY = """
local meta, quality = KEYS[1], KEYS[2]
if redis.call('HEXISTS', meta, 'total') == 0 then return -1 end
for i = 1, #ARGV - 1, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', quality, ARGV[i])
  else
    redis.call('HSET', quality, ARGV[i], ARGV[i + 1])
  end
end
local n = redis.call('HLEN', quality)
redis.call('HSET', meta, 'quality_flagged', n)
redis.call('EXPIRE', quality, ARGV[#ARGV])
return n
"""


#: Turns a planned job (meta field planning=1, state planning or paused) into a scheduled one: sets the
#: fields in ARGV[2..] (name, value pairs), moves planning -> queued (a pause made meanwhile stays) and adds the
#: job (ARGV[1]) to the active set KEYS[2]. Returns the state found ('' for a job Redis lost) and 1 if it was planned.
_FINISH_PLANNING = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'', 0} end
if redis.call('HGET', KEYS[1], 'planning') ~= '1' or (state ~= 'planning' and state ~= 'paused') then
  return {state, 0}
end
redis.call('HSET', KEYS[1], 'planning', '0', unpack(ARGV, 2))
if state == 'planning' then redis.call('HSET', KEYS[1], 'state', 'queued') end
redis.call('SADD', KEYS[2], ARGV[1])
return {state, 1}
"""


#: Adds ARGV[2] to the counter ARGV[1] of the job KEYS[1], if the ledger holds the job.
_COUNT = """
if redis.call('HEXISTS', KEYS[1], 'state') == 0 then return 0 end
return redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
"""


#: Removes from the sets KEYS each job id ARGV[i] whose meta hash ARGV[i + 1] no longer holds a job.
_FORGET_EXPIRED = """
for i = 1, #ARGV, 2 do
  if redis.call('HEXISTS', ARGV[i + 1], 'state') == 0 then
    for _, set in ipairs(KEYS) do redis.call('SREM', set, ARGV[i]) end
  end
end
return 0
"""


#: Moves a job to ARGV[1] if its state is one of ARGV[3..]; ARGV[2] is the time. Returns {moved(1/0), previous}.
_TRANSITION = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {0, ''} end
for i = 3, #ARGV do
  if state == ARGV[i] then
    redis.call('HSET', KEYS[1], 'state', ARGV[1], 'updated_at', ARGV[2])
    return {1, state}
  end
end
return {0, state}
"""


@dataclass(frozen=True)
class MarkResult:
    known: bool
    newly_done: int
    done: int
    total: int
    completed: bool
    """True for exactly one caller: the one whose mark finished the job."""


@dataclass
class JobStatus:
    job: str
    state: str
    title: str
    total: int
    done: int
    reused: int
    failed: dict[int, dict[str, Any]] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float = 0.0
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def remaining(self) -> int:
        return max(self.total - self.done, 0)

    @property
    def planning(self) -> bool:
        """Submitted as a request the control plane has not planned yet: ``total`` is not known."""
        return self.meta.get("planning") == "1"

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "state": self.state,
            "title": self.title,
            "segments_total": self.total,
            "segments_done": self.done,
            "segments_reused": self.reused,
            "segments_rendered": max(self.done - self.reused, 0),
            "segments_failed": len(self.failed),
            "tenant": self.meta.get("tenant", "default"),
            "priority": int(self.meta.get("priority", 50)),
            "lane": self.meta.get("lane", "bulk"),
            "failures": {str(k): v for k, v in sorted(self.failed.items())},
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "finished_at": self.finished_at,
        }


def _job_status(job: str, raw_meta: Mapping[bytes, bytes], done: int, raw_failed: Mapping[bytes, bytes]) -> JobStatus:
    meta = {k.decode(): v.decode() for k, v in raw_meta.items()}
    return JobStatus(
        job=job,
        state=meta.get("state", "unknown"),
        title=meta.get("title", ""),
        total=int(meta.get("total", 0)),
        done=done,
        reused=int(meta.get("reused", 0)),
        failed={int(k): json.loads(v) for k, v in raw_failed.items()},
        created_at=float(meta.get("created_at", 0)),
        updated_at=float(meta.get("updated_at", 0)),
        finished_at=float(meta.get("finished_at", 0)),
        meta=meta,
    )


def _keys(job: str) -> tuple[str, str, str, str]:
    check_job_id(job)
    return job_key(job, "meta"), job_key(job, "done"), job_key(job, "failed"), job_key(job, "sent")


class Ledger:
    """Job bookkeeping on one Redis connection pool."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._mark_done = client.register_script(_MARK_DONE)
        self._mark_failed = client.register_script(_MARK_FAILED)
        self._record_quality = client.register_script(_RECORD_QUALITY)
        self._transition = client.register_script(_TRANSITION)
        self._finish_planning = client.register_script(_FINISH_PLANNING)
        self._forget = client.register_script(_FORGET_EXPIRED)
        self._count = client.register_script(_COUNT)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Ledger:
        return cls(
            redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30, health_check_interval=30, **options)
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Ledger:
        """The ledger on the configured Redis, with its password and TLS settings."""
        return cls.from_url(settings.broker_url, **settings.redis_ssl_options)

    def ping(self) -> None:
        try:
            self.redis.ping()
        except redis.RedisError as exc:
            raise BrokerError(f"cannot reach Redis: {exc}; check VOXFARM_REDIS_URL and that Redis is running") from exc

    # --- producer side -----------------------------------------------------
    def create_job(
        self, job: str, *, total: int, reused: Iterable[int], meta: Mapping[str, str | int | float]
    ) -> MarkResult:
        """(Re)create a job's ledger; already stored segments are marked done at once."""
        meta_key = _keys(job)[0]
        now = time.time()
        fields: dict[str, str | int | float] = {
            **meta,
            "total": total,
            "state": JobState.QUEUED.value,
            "gen": uuid.uuid4().hex,
            "created_at": now,
            "updated_at": now,
        }
        reused_list = sorted(set(reused))
        fields["reused"] = len(reused_list)
        self._write_new(job, fields, active=True)
        if total == 0:
            self.redis.hset(meta_key, "state", JobState.ASSEMBLING.value)
            return MarkResult(True, 0, 0, 0, True)
        return self._mark_reused(job, reused_list, total)

    def register_planning(self, job: str, *, meta: Mapping[str, str | int | float]) -> None:
        """(Re)create a job that is still to be planned: listed and operable, but not dispatched."""
        now = time.time()
        fields = {
            **meta,
            "total": 0,
            "reused": 0,
            "state": JobState.PLANNING.value,
            "planning": 1,
            "gen": uuid.uuid4().hex,
            "created_at": now,
            "updated_at": now,
        }
        self._write_new(job, fields, active=False)

    def _write_new(self, job: str, fields: Mapping[str, str | int | float], *, active: bool) -> None:
        """Replace whatever the ledger held of the job; ``active`` puts it in the dispatcher's set."""
        meta_key, done_key, failed_key, sent_key = _keys(job)
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(meta_key, done_key, failed_key, sent_key)
            pipe.hset(meta_key, mapping=cast(Any, fields))
            pipe.sadd(JOBS, job)
            pipe.sadd(tenant_jobs_key(check_tenant(str(fields.get("tenant", "default")))), job)
            if active:
                pipe.sadd(SCHED_ACTIVE, job)
            else:
                pipe.srem(SCHED_ACTIVE, job)
            pipe.execute()
        except redis.RedisError as exc:
            raise BrokerError(f"cannot write the job ledger: {exc}") from exc

    def finish_planning(
        self, job: str, *, total: int, reused: Iterable[int], meta: Mapping[str, str | int | float]
    ) -> MarkResult | None:
        """Hand a job planned by the control plane to the dispatcher; None if it is no longer waiting for a plan
        (cancelled meanwhile, planned by another replica, or lost with its Redis)."""
        reused_list = sorted(set(reused))
        fields = {**meta, "total": total, "reused": len(reused_list), "updated_at": time.time()}
        args = [str(v) for pair in fields.items() for v in pair]
        try:
            _, planned = self._finish_planning(keys=[_keys(job)[0], SCHED_ACTIVE], args=[job, *args])
        except redis.RedisError as exc:
            raise BrokerError(f"cannot write the job ledger: {exc}") from exc
        if not planned:
            return None
        return self._mark_reused(job, reused_list, total)

    def _mark_reused(self, job: str, reused: list[int], total: int) -> MarkResult:
        """Mark the segments a new job found stored; the mark that completes it says so."""
        return self.mark_done(job, reused) if reused else MarkResult(True, 0, 0, total, False)

    def record_sent(self, job: str, indexes: Iterable[int]) -> None:
        sent_key = _keys(job)[3]
        now = time.time()
        mapping = {str(i): now for i in indexes}
        if mapping:
            try:
                self.redis.hset(sent_key, mapping=cast(Any, mapping))
            except redis.RedisError as exc:
                raise BrokerError(f"cannot write the job ledger: {exc}") from exc

    def clear_sent(self, job: str, indexes: Iterable[int]) -> None:
        """Forget that segments were sent: the dispatcher owes them again."""
        fields = [str(i) for i in indexes]
        if fields:
            try:
                self.redis.hdel(_keys(job)[3], *fields)
            except redis.RedisError as exc:
                raise BrokerError(f"cannot write the job ledger: {exc}") from exc

    def reload(self, job: str) -> None:
        """Make the dispatcher reload the job from its plan and the ledger (after resume or unpause)."""
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(_keys(job)[0], "gen", uuid.uuid4().hex)
            pipe.sadd(SCHED_ACTIVE, job)
            pipe.execute()
        except redis.RedisError as exc:
            raise BrokerError(f"cannot write the job ledger: {exc}") from exc

    # --- worker side -------------------------------------------------------
    def mark_done(self, job: str, indexes: Iterable[int]) -> MarkResult:
        keys = list(_keys(job)[:3])
        args = [str(i) for i in indexes] + [str(time.time())]
        try:
            added, done, total, moved, known = (int(v) for v in self._mark_done(keys=keys, args=args))
        except redis.RedisError as exc:
            raise BrokerError(f"cannot mark segments of {job} done: {exc}") from exc
        return MarkResult(bool(known), added, done, total, bool(moved))

    def mark_failed(self, job: str, indexes: Iterable[int], reason: str, attempts: int) -> bool:
        keys = list(_keys(job))
        record = json.dumps({"reason": reason[:500], "attempts": attempts, "at": time.time()})
        try:
            return bool(self._mark_failed(keys=keys, args=[*(str(i) for i in indexes), record]))
        except redis.RedisError as exc:
            raise BrokerError(f"cannot mark segments of {job} failed: {exc}") from exc

    def count(self, job: str, counter: str, amount: int = 1) -> None:
        """Add to a counter of a job the ledger holds (never creating a stub of one Redis lost)."""
        with contextlib.suppress(redis.RedisError):  # counters are informational; never fail a segment over one
            self._count(keys=[_keys(job)[0]], args=[counter, amount])

    # --- control side ------------------------------------------------------
    def set_state(self, job: str, state: JobState, **extra: str | float) -> None:
        meta_key = _keys(job)[0]
        fields: dict[str, str | float] = {"state": state.value, "updated_at": time.time(), **extra}
        if state in (JobState.DONE, JobState.FAILED, JobState.CANCELLED):
            fields["finished_at"] = time.time()
        pipe = self.redis.pipeline()
        pipe.hset(meta_key, mapping=cast(Any, fields))
        if state not in SCHEDULED_STATES:
            pipe.srem(SCHED_ACTIVE, job)
        if state in FINAL_STATES:
            for key in _keys(job):
                pipe.expire(key, FINISHED_TTL_S)
        pipe.execute()

    def transition(self, job: str, to: JobState, allowed: Iterable[JobState]) -> tuple[bool, str]:
        """Atomically move a job to ``to`` if it is in one of ``allowed``; (moved, previous state)."""
        args = [to.value, str(time.time()), *(state.value for state in allowed)]
        try:
            moved, previous = self._transition(keys=[_keys(job)[0]], args=args)
        except redis.RedisError as exc:
            raise BrokerError(f"cannot change the state of {job}: {exc}") from exc
        previous_text = previous.decode() if isinstance(previous, bytes) else str(previous)
        if moved:
            self.set_state(job, to)  # the side effects: finish time, expiry, leaving the active set
        return bool(moved), previous_text

    def set_meta(self, job: str, **fields: str | int | float) -> None:
        self.redis.hset(_keys(job)[0], mapping=cast(Any, fields))

    def exists(self, job: str) -> bool:
        """Whether the ledger holds the job (a hash with only counters in it is no job)."""
        return bool(self.redis.hexists(_keys(job)[0], "state"))

    def status(self, job: str) -> JobStatus:
        found = self.statuses([job])
        if not found:
            raise NotFoundError(f"no job {job!r} in the ledger; check the id with `voxfarm jobs`")
        return found[0]

    def statuses(self, jobs: Iterable[str]) -> list[JobStatus]:
        """The status of each job the ledger still holds, in one round trip; expired jobs are left out."""
        wanted = list(jobs)
        try:
            pipe = self.redis.pipeline(transaction=False)
            for job in wanted:
                meta_key, done_key, failed_key, _ = _keys(job)
                pipe.hgetall(meta_key)
                pipe.scard(done_key)
                pipe.hgetall(failed_key)
            replies = pipe.execute()
        except redis.RedisError as exc:
            raise BrokerError(f"cannot read the job ledger: {exc}; check VOXFARM_REDIS_URL") from exc
        found = []
        for position, job in enumerate(wanted):
            raw_meta, done, raw_failed = replies[3 * position : 3 * position + 3]
            if b"state" in raw_meta:  # not a hash of counters alone, left by a late worker after Redis lost the job
                found.append(_job_status(job, raw_meta, int(done), raw_failed))
        return found

    def done_indexes(self, job: str) -> set[int]:
        return {int(v) for v in self.redis.smembers(_keys(job)[1])}

    def sent_times(self, job: str) -> dict[int, float]:
        return {int(k): float(v) for k, v in self.redis.hgetall(_keys(job)[3]).items()}

    def jobs(self) -> list[str]:
        return sorted(v.decode() if isinstance(v, bytes) else str(v) for v in self.redis.smembers(JOBS))

    def all_statuses(self) -> list[JobStatus]:
        """Every job the ledger holds, newest first; ids whose keys expired leave the job sets."""
        jobs = self.jobs()
        found = self.statuses(jobs)
        self._forget_expired(JOBS, jobs, found)
        return sorted(found, key=lambda s: s.created_at, reverse=True)

    def tenant_statuses(self, tenant: str) -> list[JobStatus]:
        """One tenant's jobs, newest first: read from the tenant's own index, not from every job of the farm."""
        key = tenant_jobs_key(check_tenant(tenant))
        members = sorted(v.decode() if isinstance(v, bytes) else str(v) for v in self.redis.smembers(key))
        found = self.statuses(members)
        self._forget_expired(key, members, found)
        moved = [s.job for s in found if s.meta.get("tenant", "default") != tenant]  # an id since reused elsewhere
        if moved:
            self.redis.srem(key, *moved)
        return sorted((s for s in found if s.job not in moved), key=lambda s: s.created_at, reverse=True)

    def index_tenants(self) -> int:
        """Put every job in its tenant's index (jobs registered before the index existed); returns how many."""
        jobs = self.jobs()
        pipe = self.redis.pipeline(transaction=False)
        for job in jobs:
            pipe.hget(_keys(job)[0], "tenant")
        tenants = pipe.execute()
        pipe = self.redis.pipeline(transaction=False)
        indexed = 0
        for job, tenant in zip(jobs, tenants, strict=True):
            if tenant is None:
                continue
            name = tenant.decode() if isinstance(tenant, bytes) else str(tenant)
            pipe.sadd(tenant_jobs_key(check_tenant(name or "default")), job)
            indexed += 1
        pipe.execute()
        return indexed

    def _forget_expired(self, key: str, listed: list[str], found: list[JobStatus]) -> None:
        """Drop from ``key`` (and from the set of all jobs) the listed ids whose ledger has expired."""
        present = {s.job for s in found}
        gone = [job for job in listed if job not in present]
        if gone:
            sets = [key] if key == JOBS else [key, JOBS]
            # Checked again inside the script: a job registered since the read keeps its id.
            self._forget(keys=sets, args=[arg for job in gone for arg in (job, _keys(job)[0])])

    # --- quality gate ------------------------------------------------------
    def record_quality(self, job: str, index: int, findings: Mapping[str, Any] | None) -> int:
        """Record the quality findings of one segment (None clears them); returns the job's flagged count.

        ``findings`` is the kept take's report, e.g. ``{"attempts": 3, "findings": [...]}``. Returns -1
        for a job the ledger does not know (nothing is written then).
        """
        return self.replace_quality(job, {index: findings})

    def replace_quality(self, job: str, records: Mapping[int, Mapping[str, Any] | None], *, clear: bool = False) -> int:
        """Record several segments' findings at once; ``clear`` first forgets every earlier record of the job."""
        meta_key = _keys(job)[0]
        quality_key = job_key(check_job_id(job), "quality")
        args: list[str] = []
        for index, record in records.items():
            args += [str(int(index)), "" if record is None else json.dumps(record, separators=(",", ":"))]
        try:
            if clear:
                self.redis.delete(quality_key)
            return int(self._record_quality(keys=[meta_key, quality_key], args=[*args, str(FINISHED_TTL_S)]))
        except redis.RedisError as exc:
            raise BrokerError(f"cannot record quality findings of {job}: {exc}") from exc

    def quality(self, job: str) -> dict[int, dict[str, Any]]:
        """Segment index -> recorded findings, for segments kept after failing the quality gate."""
        raw = self.redis.hgetall(job_key(check_job_id(job), "quality"))
        return {int(k): json.loads(v) for k, v in raw.items()}
