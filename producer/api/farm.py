"""The farm as the HTTP service sees it: the Operations API and storage, fenced by tenant.

The web layer calls only this class, never a Redis or S3 client, so every
rule about who may see what lives here: a job of another tenant is
indistinguishable from a job that does not exist, and a file is served only
if the job's manifest lists it.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from threading import Lock
from typing import Any

from producer.operations import Operations
from producer.submit import SubmitResult, load_plan
from producer.tenants import Tenant
from producer.tokens import TokenStore
from shared.errors import ConflictError, NotFoundError
from shared.keys import job_dir, manifest_path
from shared.ledger import LIVE_STATES, JobState, JobStatus
from shared.names import check_job_id, slugify
from shared.schema import Manifest
from shared.settings import Settings
from shared.voices import VoiceRegistry

CONTENT_TYPES = {
    "flac": "audio/flac",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "m4b": "audio/mp4",
    "m4a": "audio/mp4",
    "srt": "application/x-subrip",
    "vtt": "text/vtt",
    "json": "application/json",
    "jpg": "image/jpeg",
    "png": "image/png",
}


CHAPTER_CACHE_JOBS = 512
"""Jobs whose chapter layout (from the stored plan) is kept in memory between requests."""


def scoped_job_id(tenant: str, job: str, *, named: bool = False) -> str:
    """A job id no other tenant can produce: the readable part of ``job`` and a hash over tenant and id.

    Job ids derive from a book's content, so two tenants submitting the same
    book would otherwise share (and overwrite) one job. The readable part of
    a derived id drops its content digest; a name the user gave (``named``)
    is kept whole.
    """
    readable = slugify(job.rsplit("-", 1)[0] if job.count("-") and not named else job, 48)
    digest = hashlib.sha256(f"{tenant}\0{job}".encode()).hexdigest()[:12]
    return check_job_id(f"{readable}-{digest}")


@dataclass
class ChapterProgress:
    index: int
    title: str
    segments: int
    done: int


@dataclass
class Farm:
    """One per service process; thread-safe (FastAPI runs plain endpoints on a thread pool)."""

    operations: Operations
    tokens: TokenStore
    _chapters: dict[tuple[str, str], list[tuple[int, str, list[int]]]] = field(default_factory=dict)
    """Chapter layouts by (job, generation): a job id submitted again is a new generation with its own plan."""
    _lock: Lock = field(default_factory=Lock)

    @classmethod
    def from_settings(cls, settings: Settings) -> Farm:
        operations = Operations.from_settings(settings)
        return cls(operations, TokenStore(operations.ledger.redis))

    @property
    def settings(self) -> Settings:
        return self.operations.settings

    # --- reading -----------------------------------------------------------
    def status(self, tenant: str, job: str) -> JobStatus:
        """The job's status, or NotFoundError alike for a missing job and another tenant's."""
        try:
            status = self.operations.ledger.status(check_job_id(job))
        except NotFoundError:
            status = None
        if status is None or status.meta.get("tenant", "default") != tenant:
            raise NotFoundError(f"no job {job!r}")
        return status

    def jobs(self, tenant: str, state: str | None = None, limit: int | None = None) -> list[JobStatus]:
        """The tenant's jobs, newest first (finished jobs expire from the ledger after two weeks)."""
        found = [s for s in self.operations.ledger.tenant_statuses(tenant) if state is None or s.state == state]
        return found[:limit]

    def chapters(self, status: JobStatus) -> list[ChapterProgress]:
        """Chapter titles from the stored plan (cached per job) with how many segments of each are done."""
        if status.planning:
            return []  # the control service is planning it: no chapters yet
        cache_key = (status.job, status.meta.get("gen", ""))
        with self._lock:
            layout = self._chapters.get(cache_key)
        if layout is None:
            try:
                plan = load_plan(self.operations.storage, status.job)
            except NotFoundError:
                return []  # submitted again and not planned yet, or its plan was removed: no chapters to show
            layout = [(c.index, c.title, [s.index for s in c.segments]) for c in plan.chapters]
            with self._lock:
                if len(self._chapters) >= CHAPTER_CACHE_JOBS:
                    self._chapters.pop(next(iter(self._chapters)))  # the oldest entry
                self._chapters[cache_key] = layout
        finished = status.state == JobState.DONE or status.done >= status.total
        done = set() if finished else self.operations.ledger.done_indexes(status.job)
        return [
            ChapterProgress(index, title, len(indexes), len(indexes) if finished else len(done.intersection(indexes)))
            for index, title, indexes in layout
        ]

    def manifest(self, tenant: str, job: str) -> Manifest:
        self.status(tenant, job)
        try:
            return Manifest.model_validate_json(self.operations.storage.get_bytes(manifest_path(job)))
        except NotFoundError:
            raise NotFoundError(f"job {job} has no manifest yet: it is not finished") from None

    def output_file(self, tenant: str, job: str, name: str) -> tuple[str, int, str]:
        """(storage path, size, content type) of a file the job's manifest lists; anything else is not found."""
        manifest = self.manifest(tenant, job)
        listed = {c.file for c in manifest.chapters} | set(manifest.files.values())
        listed |= {n for c in manifest.chapters for n in c.subtitles.values()}
        if name not in listed:
            raise NotFoundError(f"job {job} has no file {name!r}; the manifest lists its files")
        path = f"{job_dir(job)}/{name}"
        extension = name.rsplit(".", 1)[-1].lower()
        try:
            size = self.operations.storage.size(path)
        except NotFoundError:
            raise NotFoundError(f"job {job}'s file {name!r} is missing from storage; ask an operator") from None
        return path, size, CONTENT_TYPES.get(extension, "application/octet-stream")

    def output_bytes(self, tenant: str, job: str, name: str) -> bytes:
        """A whole output file (a short one: the speech endpoint's answer)."""
        path, _, _ = self.output_file(tenant, job, name)
        try:
            return self.operations.storage.get_bytes(path)
        except NotFoundError:
            raise NotFoundError(f"job {job}'s file {name!r} is missing from storage; ask an operator") from None

    def read_range(self, path: str, start: int, end: int) -> Iterator[bytes]:
        return self.operations.storage.read_range(path, start, end)

    def contents(self, book: Path, *, include_matter: bool = False) -> dict[str, Any]:
        """Title, author and chapters of a book as ingestion reads it: what a chapter selection picks from."""
        from producer.ingest import load_book

        loaded = load_book(book, include_matter=include_matter, max_bytes=self.settings.max_source_bytes)
        chapters = [
            {
                "number": number,
                "title": chapter.title or f"Chapter {number}",
                "chars": sum(map(len, chapter.paragraphs)),
            }
            for number, chapter in enumerate(loaded.chapters, start=1)
        ]
        return {"title": loaded.title, "author": loaded.author, "chapters": chapters}

    def voices(self) -> list[dict[str, Any]]:
        """Piper voices and voice presets (`voxfarm voices`), the farm's default voice marked."""
        from producer.piper_voices import preset_rows
        from shared.presets import PresetRegistry

        settings = self.settings
        registry = VoiceRegistry(settings.voices_dir, self.operations.storage, settings.effective_cache_dir)
        rows: list[dict[str, Any]] = [{"id": voice, "engine": "piper"} for voice in registry.available()]
        rows += [{**row, "preset": True} for row in preset_rows(PresetRegistry(registry)) if "error" not in row]
        return [{**row, "default": row["id"] == settings.voice} for row in rows]

    def ready(self) -> None:
        """Raises a RetryableError when Redis or storage cannot be used."""
        self.operations.ledger.ping()
        self.operations.storage.check()

    # --- changing ----------------------------------------------------------
    def submit(
        self, tenant: str, book: Path, options: dict[str, Any], *, priority: int, lane: str, job: str | None = None
    ) -> tuple[SubmitResult, int]:
        """Submit the book exactly as `voxfarm submit` does, under a job id scoped to the tenant (or ``job``).

        Returns the result and the chapters the book has; a large book is planned by the control service.
        """
        from producer.deferred import submit_book
        from producer.request import submission_from_args

        args = argparse.Namespace(book=book, **options)
        ops = self.operations
        submission = submission_from_args(args, self.settings, ops.storage)
        named = bool(options.get("job"))
        submission = submission.with_job(
            check_job_id(job) if job else scoped_job_id(tenant, submission.job, named=named)
        )
        if ops.ledger.exists(submission.job):
            # Scoped ids make a clash impossible; never touch another tenant's job.
            current = self.status(tenant, submission.job)
            if current.state in LIVE_STATES:
                raise ConflictError(
                    f"job {current.job} is still {current.state}; follow it with GET /v1/jobs/{current.job}"
                )
        return submit_book(
            submission,
            storage=ops.storage,
            ledger=ops.ledger,
            app=ops.app,
            inline_chars=self.settings.plan_inline_chars,
            tenant=tenant,
            priority=priority,
            lane=lane,
        )

    def pause(self, tenant: str, job: str) -> JobStatus:
        self.status(tenant, job)
        return self.operations.pause(job)

    def resume(self, tenant: str, job: str) -> JobStatus:
        self.status(tenant, job)
        self.operations.resume(job)
        return self.operations.status(job)

    def cancel(self, tenant: str, job: str) -> JobStatus:
        self.status(tenant, job)
        return self.operations.cancel(job)

    def set_priority(self, tenant: str, job: str, priority: int) -> JobStatus:
        self.status(tenant, job)
        return self.operations.set_priority(job, priority)

    def tenants(self) -> list[Tenant]:
        return self.operations.tenants()

    def set_tenant(self, name: str, *, weight: float | None, quota: int | None) -> Tenant:
        return self.operations.set_tenant(name, weight=weight, quota=quota)


def eta_seconds(status: JobStatus, now: float | None = None) -> float | None:
    """Seconds left at the rate segments have been rendered so far; None until there is a rate."""
    if status.state not in (JobState.RENDERING, JobState.QUEUED) or not status.created_at:
        return None
    rendered = status.done - status.reused
    elapsed = (now or time.time()) - status.created_at
    if rendered <= 0 or elapsed <= 0:
        return None
    return round(status.remaining * elapsed / rendered, 1)
