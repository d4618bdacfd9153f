"""The dispatcher: admission control for the bucket queues, in fair order.

Submit registers a job; the dispatcher, on the control replica that holds
the lease, keeps each bucket queue topped up to a bounded window and picks
what goes in by the fair-share policy (``producer/fairshare.py``). A cycle:

1. renew the lease (another holder: do nothing; a new token: forget
   everything and rebuild);
2. read the active jobs from the ledger, load the plans of new ones and
   work out what each still owes: segments neither done nor sent within
   the visibility timeout (the same rule as ``voxfarm resume``);
3. read the windows (from the workers' published batch sizes) and the
   queue lengths;
4. hand out units in fair order until every window is full, and push them
   in one fenced Lua script (``producer/fenced_push.py``).

Everything here is rebuilt from Redis and the stored plans, so killing the
dispatcher or losing Redis loses no segment.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import redis
from celery import Celery

from producer.envelopes import Envelopes, task_kwargs_json
from producer.fairshare import DEFAULT_PRIORITY, FairShare, ShareState
from producer.fenced_push import FencedPush, Outgoing
from producer.jobwork import JobWork, Unit, build_units
from producer.lease import Lease
from producer.submit import DEFAULT_TENANT, group_by_key, load_plan, segment_tasks, send_options, task_queue
from producer.tenants import Tenant, ensure_tenants, read_tenants
from shared.buckets import interactive_queue_name, queue_name
from shared.engines import engine_spec
from shared.errors import NotFoundError, RetryableError, VoxfarmError
from shared.ledger import JobState, Ledger
from shared.redis_keys import SCHED_ACTIVE, SCHED_CONSUMERS, SCHED_STATS, SCHED_WAKE, consumer_key, job_key
from shared.schema import SegmentPlan
from shared.settings import Settings
from shared.storage import Storage

log = logging.getLogger(__name__)

CONSUMERS_REFRESH_S = 1.0
WINDOW_CALLS = 2
"""Engine calls' worth of messages kept queued per worker and bucket."""
MAX_LABELS = 1000
TENANTS_SEED_S = 30.0
"""How often, while Redis has no tenants, they are looked for in storage and settings."""

_META_FIELDS = ("state", "tenant", "priority", "lane", "gen", "created_at")

#: Removes job ARGV[1] from the active set KEYS[2] unless its meta KEYS[1] is (again) in a scheduled state:
#: a job resumed since the dispatcher read its state stays.
_DROP_IF_UNSCHEDULED = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'queued' or state == 'rendering' or state == 'paused' then return 0 end
return redis.call('SREM', KEYS[2], ARGV[1])
"""


class _LeaseLost(Exception):
    """The lease lapsed to another holder while this cycle was loading plans."""


@dataclass(frozen=True)
class CycleResult:
    held: bool
    dispatched: int = 0
    seconds: float = 0.0


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


class Dispatcher:
    def __init__(
        self,
        *,
        storage: Storage,
        ledger: Ledger,
        app: Celery,
        settings: Settings,
        holder: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage, self.ledger, self.app, self.settings = storage, ledger, app, settings
        self.redis = ledger.redis
        self.lease = Lease(self.redis, settings.lease_ttl_s, **({"holder": holder} if holder else {}))
        self.pusher = FencedPush(self.redis)
        self.policy = FairShare(settings.priority_aging_s, clock)
        self.clock = clock
        self.jobs: dict[str, JobWork] = {}
        self.tenants: dict[str, Tenant] = {}
        self._envelopes: Envelopes | None = None
        self._windows: dict[str, int] = {}
        self._windows_at = 0.0
        self._seeded_at = float("-inf")
        self._renewed_at = float("-inf")
        self._labels: set[str] = set()
        """Every tenant|priority seen: reported at 0 once drained, so their series do not vanish."""
        self._broken: dict[str, str] = {}
        """Jobs whose plan could not be loaded, by the generation that failed: not tried again until it changes."""
        self._drop_if_unscheduled = self.redis.register_script(_DROP_IF_UNSCHEDULED)

    # --- the loop ------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.cycle()
            except (VoxfarmError, redis.RedisError, OSError) as exc:
                log.warning("dispatch cycle failed, rebuilding: %s", exc)
                self.reset()
                stop.wait(1.0)
                continue
            except Exception:  # a bug must not end the thread while the control service looks healthy
                log.exception("dispatch cycle failed unexpectedly, rebuilding")
                self.reset()
                stop.wait(1.0)
                continue
            try:
                self.redis.blpop([SCHED_WAKE], timeout=self.settings.dispatch_interval_s)
            except redis.RedisError:
                stop.wait(self.settings.dispatch_interval_s)
        self.lease.release()
        if self._envelopes is not None:
            self._envelopes.close()

    def reset(self) -> None:
        """Forget every in-memory view; the next cycle rebuilds it from Redis and storage."""
        self.jobs.clear()
        self.policy = FairShare(self.settings.priority_aging_s, self.clock)
        self._windows_at = 0.0
        self._seeded_at = float("-inf")

    def cycle(self) -> CycleResult:
        started = time.perf_counter()
        previous = self.lease.value
        # Renewing a third of the TTL ahead is enough: the fenced push, not the renewal, keeps a stale
        # holder from writing.
        due = not previous or time.monotonic() - self._renewed_at > self.settings.lease_ttl_s / 3
        if due and self.lease.renew():
            self._renewed_at = time.monotonic()
        if not self.lease.held:
            if previous:
                log.warning("dispatcher lease lost to %s", self.lease.current_holder() or "nobody")
                self.reset()
            return CycleResult(held=False)
        if self.lease.value != previous:
            log.info("dispatcher lease taken: %s", self.lease.value)
            self.reset()
        self.tenants = read_tenants(self.redis)
        if not self.tenants and time.monotonic() - self._seeded_at > TENANTS_SEED_S:
            self._seeded_at = time.monotonic()  # storage is read rarely: it is the fallback, not the index
            self.tenants = ensure_tenants(self.redis, self.storage, self.settings)
        try:
            self._refresh_jobs()
        except _LeaseLost:
            return CycleResult(held=False)
        self._settle_outstanding()
        room = self._room()
        outgoing = self._select(room)
        if not self._still_held():
            return CycleResult(held=False)
        now = self.clock()
        pushed = self.pusher.push(self.lease.value, outgoing, now)
        if pushed < 0:
            log.warning("dispatch fenced out: the lease moved to %s", self.lease.current_holder() or "nobody")
            self.lease.value = ""
            self.reset()
            return CycleResult(held=False)
        for message in outgoing:
            log.debug("segment enqueued", extra={"job": message.job, "segment": message.indexes[0], "key": message.key})
        elapsed = time.perf_counter() - started
        if due:
            self._write_stats(elapsed, now)
        return CycleResult(held=True, dispatched=pushed, seconds=elapsed)

    def _still_held(self) -> bool:
        """Renew before pushing when loading took long (a large plan): the lease must not lapse mid-cycle.

        If it lapsed and was taken again with the very next token, nobody else held it in between, so what
        this cycle prepared is still right; any other token means another replica may have dispatched.
        """
        if time.monotonic() - self._renewed_at <= self.settings.lease_ttl_s / 3:
            return True
        token = self.lease.token
        if self.lease.renew() and self.lease.token in (token, token + 1):
            self._renewed_at = time.monotonic()
            return True
        log.warning("dispatcher lease lapsed mid-cycle; rebuilding")
        self.lease.value = ""
        self.reset()
        return False

    # --- jobs ----------------------------------------------------------------
    def _refresh_jobs(self) -> None:
        active = sorted(_text(v) for v in self.redis.smembers(SCHED_ACTIVE))
        pipe = self.redis.pipeline(transaction=False)
        for job in active:
            pipe.hmget(job_key(job, "meta"), _META_FIELDS)
        rows = pipe.execute() if active else []
        seen = set()
        for job, row in zip(active, rows, strict=True):
            state, tenant, priority, lane, gen, created = (_text(v) for v in row)
            if not state or state not in (JobState.QUEUED, JobState.RENDERING, JobState.PAUSED):
                self._drop_if_unscheduled(keys=[job_key(job, "meta"), SCHED_ACTIVE], args=[job])
                continue
            if state == JobState.PAUSED:
                continue  # dropped from memory; a resume bumps gen and it is loaded afresh
            seen.add(job)
            work = self.jobs.get(job)
            if work is None or work.gen != gen:
                loaded = self._load_one(job, gen, float(created or 0.0), work)
                if loaded is None:
                    seen.discard(job)
                    continue
                work = self.jobs[job] = loaded
                if not self._still_held():  # a long load must not let the lease lapse to another replica
                    raise _LeaseLost
            work.share.tenant = tenant or DEFAULT_TENANT
            work.share.priority = int(priority) if priority else DEFAULT_PRIORITY
            work.share.interactive = lane == "interactive"
        for job in set(self.jobs) - seen:
            del self.jobs[job]
        for job in set(self._broken) - set(active):
            del self._broken[job]

    def _load_one(self, job: str, gen: str, created_at: float, previous: JobWork | None) -> JobWork | None:
        """The job's work, or None when its plan cannot be read: that job waits, the others go on."""
        if self._broken.get(job) == gen:
            return None
        try:
            work = self._load(job, gen, created_at)
        except NotFoundError as exc:
            log.warning("cannot dispatch %s: %s", job, exc, extra={"job": job})
            return None
        except (redis.RedisError, RetryableError):
            raise  # the cycle fails and is tried again: nothing is wrong with the job
        except Exception as exc:  # noqa: BLE001 - a plan this version cannot read (newer engine, damaged file)
            log.error("cannot dispatch %s until it is submitted or resumed again: %s", job, exc, extra={"job": job})
            self._broken[job] = gen
            return None
        if previous is not None:  # reloaded (resumed, re-prioritised): it keeps its place in the fair order
            work.share = previous.share
        return work

    def _load(self, job: str, gen: str, created_at: float) -> JobWork:
        """What a job still owes: segments neither done nor in flight, as units in book order."""
        plan = load_plan(self.storage, job)
        meta = self.ledger.status(job).meta
        done = self.ledger.done_indexes(job)
        sent = self.ledger.sent_times(job)
        horizon = time.time() - self.settings.visibility_timeout_s - 60
        owed, in_flight = [], []
        for segments in group_by_key(plan.segments).values():
            indexes = [s.index for s in segments]
            if all(i in done for i in indexes):
                continue
            if any(sent.get(i, 0.0) > horizon for i in indexes):
                in_flight.append(segments)
                continue
            owed.append(segments)
        spec = engine_spec(plan.engine)
        lane = meta.get("lane", "bulk")

        def units(groups: list[list[SegmentPlan]], per_unit: int) -> dict[str, deque[Unit]]:
            return build_units(
                ((task_queue(plan, task), task) for task in segment_tasks(plan, groups, lane)),
                per_unit,
                lambda task: spec.estimate_s(len(task.ids), task.params.length_scale),
            )

        pending = units(owed, self.settings.dispatch_unit_segments)
        flight = {unit.first: unit for queued in units(in_flight, 1).values() for unit in queued}
        share = ShareState(job, meta.get("tenant", DEFAULT_TENANT), registered_at=created_at, last_served=created_at)
        log.info("dispatching %s: %d messages owed, %d in flight", job, len(owed), len(in_flight), extra={"job": job})
        return JobWork(share, gen, pending, flight, fresh=not sent)

    def _settle_outstanding(self) -> None:
        """Forget what landed since it was dispatched; take back what a worker handed back (quota, pause).

        A unit's segments are marked done, sent and handed back together, so each cycle reads one probe per
        unit in flight (its first segment): a unit whose probe is still sent and not done is still in flight
        as a whole. Only units whose probe moved are read whole: a cycle costs one lookup per message in
        flight, not one per segment.
        """
        flights = [(job, list(work.flight.values())) for job, work in self.jobs.items() if work.flight]
        if not flights:
            return
        pipe = self.redis.pipeline(transaction=False)
        for job, units in flights:
            probes = [unit.first for unit in units]
            pipe.smismember(job_key(job, "done"), probes)
            pipe.hmget(job_key(job, "sent"), probes)
        replies = pipe.execute()
        moved: list[tuple[str, list[Unit]]] = []
        for (job, units), flags, times in zip(flights, replies[::2], replies[1::2], strict=True):
            changed = [unit for unit, flag, at in zip(units, flags, times, strict=True) if flag or at is None]
            if changed:
                moved.append((job, changed))
        if not moved:
            return
        pipe = self.redis.pipeline(transaction=False)
        wanted = [(job, units, sorted({i for unit in units for i in unit.indexes})) for job, units in moved]
        for job, _units, indexes in wanted:
            pipe.smismember(job_key(job, "done"), indexes)
            pipe.hmget(job_key(job, "sent"), indexes)
            pipe.hmget(job_key(job, "failed"), indexes)
        replies = pipe.execute()
        for (job, units, indexes), flags, times, failures in zip(
            wanted, replies[::3], replies[1::3], replies[2::3], strict=True
        ):
            # A segment given up (dead-lettered) is finished for the dispatcher: a resume sends it again.
            done = {i for i, flag, failed in zip(indexes, flags, failures, strict=True) if flag or failed}
            sent = {i for i, at in zip(indexes, times, strict=True) if at is not None}
            self.jobs[job].settle(done, sent, [unit.first for unit in units])

    # --- capacity ------------------------------------------------------------
    def windows(self) -> dict[str, int]:
        """Messages each queue should hold: twice the live workers' items per engine call for its bucket."""
        now = time.time()
        if now - self._windows_at < CONSUMERS_REFRESH_S:
            return self._windows
        self.redis.zremrangebyscore(SCHED_CONSUMERS, "-inf", now)
        hosts = [_text(cast(bytes, h)) for h in self.redis.zrange(SCHED_CONSUMERS, 0, -1)]
        windows: dict[str, int] = {}
        found = cast(list[bytes | None], self.redis.mget([consumer_key(h) for h in hosts]) if hosts else [])
        for raw in found:
            if not raw:
                continue
            presence = json.loads(raw)
            calls = {int(edge): int(n) for edge, n in presence.get("calls", {}).items()}
            model = str(presence.get("model", ""))
            for edge, n in calls.items():
                # The worker's next call, plus one more so the queue never runs dry between two cycles.
                windows[queue_name(model, edge)] = windows.get(queue_name(model, edge), 0) + WINDOW_CALLS * n
            lane = interactive_queue_name(model)
            windows[lane] = windows.get(lane, 0) + max(calls.values(), default=1)
        self._windows, self._windows_at = windows, now
        return windows

    def _room(self) -> dict[str, int]:
        queues = sorted({queue for work in self.jobs.values() for queue, units in work.pending.items() if units})
        if not queues:
            return {}
        windows = self.windows()
        pipe = self.redis.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(queue)
        lengths = pipe.execute()
        return {
            queue: max(windows.get(queue, self.settings.dispatch_window) - int(length), 0)
            for queue, length in zip(queues, lengths, strict=True)
        }

    # --- fair order ----------------------------------------------------------
    def _select(self, room: dict[str, int]) -> list[Outgoing]:
        waiting = [work for work in self.jobs.values() if any(work.pending.values())]
        self.policy.begin_cycle(work.share for work in waiting)
        weights = {name: t.weight for name, t in self.tenants.items()}
        in_flight: dict[str, int] = {}
        for work in self.jobs.values():
            in_flight[work.share.tenant] = in_flight.get(work.share.tenant, 0) + work.in_flight
        outgoing: list[Outgoing] = []
        while True:
            eligible: dict[str, tuple[JobWork, Unit]] = {}
            for work in waiting:
                tenant = self.tenants.get(work.share.tenant)
                if tenant is not None and tenant.quota is not None and in_flight.get(tenant.name, 0) >= tenant.quota:
                    continue
                unit = work.next_unit(room)
                if unit is not None:
                    eligible[work.share.job] = (work, unit)
            chosen = self.policy.choose(work.share for work, _ in eligible.values())
            if chosen is None:
                return outgoing
            work, unit = eligible[chosen.job]
            work.take(unit)
            room[unit.queue] -= 1
            in_flight[chosen.tenant] = in_flight.get(chosen.tenant, 0) + len(unit.indexes)
            self.policy.charge(chosen, unit.seconds, weights, self.settings.default_tenant_weight)
            outgoing.append(self._render(chosen, unit, head=work.fresh))
            work.fresh = False

    def _render(self, share: ShareState, unit: Unit, *, head: bool) -> Outgoing:
        if self._envelopes is None:
            self._envelopes = Envelopes(self.app)
        first = unit.tasks[0]
        kwargs = task_kwargs_json(unit.tasks)
        key, payload = self._envelopes.render(unit.queue, kwargs, send_options(first)["kwargsrepr"])
        stat = f"{share.tenant}|{share.priority}"
        return Outgoing(share.job, key, payload, unit.indexes, stat, unit.seconds, first.key, head)

    # --- what the exporter shows -----------------------------------------------
    def _write_stats(self, cycle_s: float, now: float) -> None:
        pending: dict[str, float] = dict.fromkeys(self._labels, 0.0)
        starved: dict[str, float] = dict.fromkeys(self._labels, 0.0)
        for work in self.jobs.values():
            label = f"{work.share.tenant}|{work.share.priority}"
            if len(self._labels) < MAX_LABELS:
                self._labels.add(label)
            owed = work.pending_s
            if owed <= 0:
                continue
            pending[label] = pending.get(label, 0.0) + owed
            waited = now - max(work.share.last_served, work.share.registered_at)
            starved[label] = max(starved.get(label, 0.0), waited)
        fields: dict[str, str] = {
            "holder": self.lease.holder,
            "token": str(self.lease.token),
            "cycle_s": f"{cycle_s:.6f}",
            "at": f"{now:.3f}",
            "jobs": str(len(self.jobs)),
            "pending": json.dumps(pending),
            "starved": json.dumps(starved),
        }
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(SCHED_STATS)
        pipe.hset(SCHED_STATS, mapping=fields)  # type: ignore[arg-type]
        pipe.expire(SCHED_STATS, max(int(self.settings.lease_ttl_s * 4), 10))
        pipe.execute()


def start_dispatcher(
    *, storage: Storage, ledger: Ledger, app: Celery, settings: Settings
) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    dispatcher = Dispatcher(storage=storage, ledger=ledger, app=app, settings=settings)
    thread = threading.Thread(target=dispatcher.run, args=(stop,), name="voxfarm-dispatcher", daemon=True)
    thread.start()
    return thread, stop
