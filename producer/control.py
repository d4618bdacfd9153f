"""`voxfarm control`: the control-plane service that consumes ``voxfarm.control``.

It plans large books submitted as requests (``producer/deferred.py``),
assembles finished jobs, dispatches work into the bucket queues (only the
replica holding the dispatcher lease does), runs the reconciler and serves
the queue metrics. It runs on CPU nodes on the x86 side and never
loads a model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from celery import Celery, Task

from producer.assemble import Pauses, assemble_job
from producer.request import assembly_options
from shared.buckets import CONTROL_QUEUE
from shared.celery_app import ASSEMBLE_TASK, PLAN_TASK, create_app
from shared.errors import BadInputError, BrokerError, RetryableError, VoxfarmError
from shared.ledger import JobState, Ledger
from shared.process_global import ProcessGlobal
from shared.settings import Settings
from shared.storage import Storage

log = logging.getLogger(__name__)


@dataclass
class ControlRuntime:
    settings: Settings
    storage: Storage
    ledger: Ledger

    @property
    def pauses(self) -> Pauses:
        s = self.settings
        return Pauses(s.sentence_pause_ms, s.paragraph_pause_ms, s.chapter_pause_ms)

    def assemble(self, task: Task, job: str) -> dict[str, Any]:
        try:
            status = self.ledger.status(job)
            manifest = assemble_job(
                self.storage,
                job,
                pauses=self.pauses,
                segments_reused=status.reused,
                options=assembly_options(self.settings),
            )
        except BadInputError as exc:
            log.error("assembly of %s failed: %s", job, exc, extra={"job": job})
            if self.ledger.exists(job):
                self.ledger.set_state(job, JobState.FAILED, error=str(exc)[:500])
            return {"status": "failed", "reason": str(exc)}
        except RetryableError as exc:
            attempts = int(task.request.retries or 0)
            if attempts >= self.settings.max_retries:
                self.ledger.set_state(job, JobState.FAILED, error=str(exc)[:500])
                return {"status": "failed", "reason": str(exc)}
            raise task.retry(exc=exc, countdown=self.settings.retry_backoff_s * 2**attempts) from exc
        except VoxfarmError as exc:  # a broken installation
            log.error("assembly of %s failed: %s", job, exc, extra={"job": job})
            self.ledger.set_state(job, JobState.FAILED, error=str(exc)[:500])
            return {"status": "failed", "reason": str(exc)}
        # The findings travel with the stored audio; the ledger gets them for `voxfarm status`.
        flagged = {
            int(q["segment"]): {"attempts": q["attempts"], "findings": q["findings"]}
            for chapter in manifest.chapters
            for q in chapter.quality
        }
        try:
            self.ledger.replace_quality(job, flagged, clear=True)
        except BrokerError as exc:
            log.warning("could not record the quality findings of %s: %s", job, exc, extra={"job": job})
        self.ledger.set_state(job, JobState.DONE, duration_s=manifest.duration_s)
        log.info("job assembled", extra={"job": job})
        return {"status": "done", "chapters": len(manifest.chapters)}

    def plan(self, task: Task, job: str) -> dict[str, Any]:
        from producer.deferred import plan_submitted

        holder = f"{task.request.hostname or 'control'}:{task.request.id}"
        try:
            outcome = plan_submitted(job, ledger=self.ledger, app=task.app, settings=self.settings, holder=holder)
        except (BrokerError, RetryableError) as exc:
            attempts = int(task.request.retries or 0)
            if attempts >= self.settings.max_retries:
                log.error("planning %s failed: %s", job, exc, extra={"job": job})
                return {"status": "failed", "reason": str(exc)}  # the reconciler tries again later
            raise task.retry(exc=exc, countdown=self.settings.retry_backoff_s * 2**attempts) from exc
        return {"status": outcome}


_CONTROL: ProcessGlobal[ControlRuntime] = ProcessGlobal("control runtime", "voxfarm control")
install_control = _CONTROL.install
current_control = _CONTROL.current


def register_control(app: Celery) -> None:
    @app.task(name=ASSEMBLE_TASK, bind=True, acks_late=True, max_retries=None)
    def assemble(self: Task, job: str) -> dict[str, Any]:
        return current_control().assemble(self, job)

    @app.task(name=PLAN_TASK, bind=True, acks_late=True, max_retries=None)
    def plan(self: Task, job: str) -> dict[str, Any]:
        return current_control().plan(self, job)


def build_control(settings: Settings) -> tuple[Celery, ControlRuntime]:
    storage = Storage.from_settings(settings)
    storage.check()
    ledger = Ledger.from_settings(settings)
    ledger.ping()
    runtime = ControlRuntime(settings, storage, ledger)
    app = create_app(settings)
    register_control(app)
    return app, runtime


def run_control(
    settings: Settings, *, hostname: str | None = None, concurrency: int = 2, metrics_port: int | None = None
) -> int:
    """Consume the control queue until stopped; ``metrics_port`` (0 = any free port) serves queue and job metrics."""
    import os
    import socket

    from producer.dispatcher import start_dispatcher
    from producer.exporter import start_exporter
    from producer.resume import Reconciler

    app, runtime = build_control(settings)
    install_control(runtime)
    exporter = None
    if metrics_port is not None:
        try:
            exporter = start_exporter(settings, port=metrics_port)
        except OSError as exc:  # a busy port must not stop assembly; the target shows as down instead
            log.warning("control-plane metrics not served on %s:%d: %s", settings.metrics_host, metrics_port, exc)
    reconciler = Reconciler(storage=runtime.storage, ledger=runtime.ledger, app=app, settings=settings)
    reconciler.start()
    dispatcher, stop_dispatcher = start_dispatcher(
        storage=runtime.storage, ledger=runtime.ledger, app=app, settings=settings
    )
    worker = app.Worker(
        hostname=hostname or f"voxfarm-control-{os.getpid()}@{socket.gethostname()}",
        pool="threads",
        concurrency=concurrency,
        queues=[CONTROL_QUEUE],
        without_gossip=True,
        without_mingle=True,
        loglevel=logging.getLevelName(logging.getLogger().level),
    )
    try:
        worker.start()
    finally:
        stop_dispatcher.set()
        dispatcher.join(10)
        reconciler.stop()
        install_control(None)
        if exporter is not None:
            exporter.stop()
    return int(worker.exitcode or 0)
