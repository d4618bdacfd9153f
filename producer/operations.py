"""Job and tenant operations: one Python API for the CLI and the HTTP service.

Every operation changes the ledger in Redis (read by the dispatcher each
cycle and by the workers, cached for a second) and records itself next to
the job's plan in storage, so a Redis that loses its data loses no pause,
cancel or priority. Each takes effect within one dispatch cycle.

- ``pause``: nothing more is dispatched; segments already queued are handed
  back unrendered by the workers; segments in a worker's hands finish.
- ``resume``: the two meanings of ``voxfarm resume`` in one: unpause, and
  recover lost work (``producer.resume.resume_job``).
- ``cancel``: nothing more is dispatched or synthesised; queued segments are
  acknowledged unrendered; stored audio stays (a resubmission reuses it).
- ``set_priority``: 0-100, higher first; the dispatcher re-ranks next cycle.

Bad input (an unknown job, a priority out of range) raises a BadInputError,
an operation on a job whose state forbids it (one that is finished) a
ConflictError, its subclass: exit code 2 on the command line, 409 over HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery

from producer.resume import ResumeResult, resume_job
from producer.submit import check_priority, update_submission, wake_dispatcher
from producer.tenants import Tenant, ensure_tenants, set_tenant
from shared.celery_app import create_app
from shared.errors import ConflictError, NotFoundError
from shared.ledger import JobState, JobStatus, Ledger
from shared.names import check_job_id
from shared.settings import Settings
from shared.storage import Storage

_LIVE = (JobState.PLANNING, JobState.QUEUED, JobState.RENDERING, JobState.PAUSED)


@dataclass
class Operations:
    storage: Storage
    ledger: Ledger
    app: Celery
    settings: Settings

    @classmethod
    def from_settings(cls, settings: Settings) -> Operations:
        storage = Storage.from_settings(settings)
        ledger = Ledger.from_settings(settings)
        ledger.ping()
        return cls(storage, ledger, create_app(settings), settings)

    # --- jobs ------------------------------------------------------------------
    def status(self, job: str) -> JobStatus:
        check_job_id(job)
        try:
            return self.ledger.status(job)
        except NotFoundError:
            raise NotFoundError(
                f"no job {job!r} in the ledger; check the id with `voxfarm jobs` "
                f"(a job whose Redis was lost comes back with `voxfarm resume {job}`)"
            ) from None

    def _change(self, job: str, to: JobState, allowed: tuple[JobState, ...], verb: str) -> JobStatus:
        current = self.status(job)
        if current.state == to.value:
            return current
        moved, previous = self.ledger.transition(job, to, allowed)
        if not moved:
            raise ConflictError(f"cannot {verb} job {job}: it is {previous or current.state}")
        wake_dispatcher(self.ledger)
        return self.ledger.status(job)

    def pause(self, job: str) -> JobStatus:
        status = self._change(job, JobState.PAUSED, (JobState.PLANNING, JobState.QUEUED, JobState.RENDERING), "pause")
        update_submission(self.storage, self.ledger.redis, job, paused=1)
        return status

    def resume(self, job: str, *, force: bool = False) -> ResumeResult:
        check_job_id(job)
        return resume_job(
            job, storage=self.storage, ledger=self.ledger, app=self.app, settings=self.settings, force=force
        )

    def cancel(self, job: str) -> JobStatus:
        status = self._change(job, JobState.CANCELLED, (*_LIVE, JobState.FAILED), "cancel")
        update_submission(self.storage, self.ledger.redis, job, cancelled=1)
        return status

    def set_priority(self, job: str, priority: int) -> JobStatus:
        check_priority(priority)
        current = self.status(job)
        if current.state not in _LIVE:
            raise ConflictError(f"cannot change the priority of job {job}: it is {current.state}")
        self.ledger.set_meta(job, priority=priority)
        update_submission(self.storage, self.ledger.redis, job, priority=priority)
        wake_dispatcher(self.ledger)
        return self.ledger.status(job)

    # --- tenants ---------------------------------------------------------------
    def tenants(self) -> list[Tenant]:
        return sorted(ensure_tenants(self.ledger.redis, self.storage, self.settings).values(), key=lambda t: t.name)

    def set_tenant(self, name: str, *, weight: float | None = None, quota: int | None = None) -> Tenant:
        return set_tenant(self.ledger.redis, self.storage, name, weight=weight, quota=quota)
