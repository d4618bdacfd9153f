"""What each `voxfarm` subcommand does; argument parsing stays in cli.py."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from producer.console import print_json
from producer.planner import plan_summary
from producer.progress import describe, rerun_hint, watch
from producer.submit import SubmitResult, submit_plan
from shared.celery_app import create_app
from shared.errors import BadInputError, NotFoundError, VoxfarmError
from shared.keys import job_dir, manifest_path
from shared.ledger import JobState, Ledger
from shared.schema import JobPlan, Manifest
from shared.settings import Settings
from shared.storage import Storage
from shared.voices import VoiceRegistry

if TYPE_CHECKING:
    from producer.operations import Operations


def _storage(settings: Settings) -> Storage:
    storage = Storage.from_settings(settings)
    storage.check()
    return storage


def _plan(args: argparse.Namespace, settings: Settings, storage: Storage | None) -> JobPlan:
    return _plan_with_cover(args, settings, storage)[0]


def _plan_with_cover(
    args: argparse.Namespace, settings: Settings, storage: Storage | None
) -> tuple[JobPlan, bytes | None]:
    """The job plan and the book's cover image, which submit stores where the plan says."""
    from producer.request import submission_from_args

    submission = submission_from_args(args, settings, storage)
    return submission.plan(), submission.cover


def plan(args: argparse.Namespace, settings: Settings) -> int:
    job_plan = _plan(args, settings, None)
    summary = plan_summary(job_plan)
    if args.json:
        print_json(summary)
        return 0
    print(f"{job_plan.title}" + (f" by {job_plan.author}" if job_plan.author else ""))
    for chapter in summary["chapters"]:  # type: ignore[attr-defined]
        print(
            f"  {chapter['index'] + 1:3d}. {chapter['title'][:60]:60s} {chapter['segments']:5d} segments "
            f"{chapter['chars']:8d} chars"
        )
    print(f"  {summary['segments_total']} segments, job id {job_plan.job}")
    voices = summary["voices"]
    if len(voices) > 1:  # type: ignore[arg-type]
        print("  voices: " + ", ".join(f"{name} {count}" for name, count in voices.items()))  # type: ignore[attr-defined]
    for note in job_plan.notes:
        print(f"  note: {note}")
    return 0


def _submit(args: argparse.Namespace, settings: Settings, storage: Storage, ledger: Ledger) -> SubmitResult:
    """Plan a small book here; leave a large one to the control service (``producer/deferred.py``)."""
    from producer.deferred import submit_book
    from producer.request import submission_from_args

    priority = args.priority if isinstance(args.priority, int) else 50
    lane = args.lane or (args.priority if isinstance(args.priority, str) else "bulk")
    result, _ = submit_book(
        submission_from_args(args, settings, storage),
        storage=storage,
        ledger=ledger,
        app=create_app(settings),
        inline_chars=settings.plan_inline_chars,
        tenant=args.tenant,
        priority=priority,
        lane=lane,
    )
    return result


def submit(args: argparse.Namespace, settings: Settings) -> int:
    storage = _storage(settings)
    ledger = Ledger.from_settings(settings)
    ledger.ping()
    result = _submit(args, settings, storage, ledger)
    if args.json:
        print_json(result.__dict__)
    else:
        print(result.job)
        if result.planning:
            print(f"planned by the control service; follow it with `voxfarm watch {result.job}`", file=sys.stderr)
        else:
            print(f"{result.total} segments: {result.reused} reused, {result.enqueued} to render", file=sys.stderr)
    if args.wait:
        final = watch(ledger, result.job, show=True)
        return 0 if final.state == JobState.DONE else 1
    return 0


def render(args: argparse.Namespace, settings: Settings) -> int:
    """Render into a folder: on the configured cluster, or on an embedded one."""
    storage = _storage(settings)
    if settings.redis_url:
        ledger = Ledger.from_settings(settings)
        ledger.ping()
        job_plan, cover = _plan_with_cover(args, settings, storage)
        _print_notes(job_plan)
        with _rerun_hint_on_error(storage, job_plan):
            return _render_on(args, settings, storage, ledger, job_plan=job_plan, cover=cover)
    from producer.embedded import local_farm

    voice = args.voice or settings.voice
    # Plan before starting anything: bad input fails in a second, not after the farm starts.
    job_plan, cover = _plan_with_cover(args, settings, storage)
    print(
        f"rendering {job_plan.title!r}: {job_plan.segments_total} segments, "
        f"{len(job_plan.chapters)} chapters, on a local farm",
        file=sys.stderr,
    )
    _print_notes(job_plan)
    # A cast job needs a worker for each model its voices use (presets of one model, and the voices of one
    # Qwen3-TTS checkpoint, share its workers).
    served = {
        job_plan.queue_model(use.model): (use.engine or job_plan.engine, use.model) for use in job_plan.voices.values()
    }
    models = [served[model] for model in sorted(served)] or [(job_plan.engine, voice)]
    (engine, voice), extra = models[0], models[1:]
    with (
        _rerun_hint_on_error(storage, job_plan),
        local_farm(workers=args.workers, engine=engine, voice=voice, extra_voices=extra) as (redis_url, farm),
    ):
        local = settings.model_copy(update={"redis_url": redis_url})
        ledger = Ledger.from_url(redis_url)
        farm.after_exit = partial(_requeue_unstored, job_plan.job, storage, ledger, local)
        return _render_on(
            args,
            local,
            storage,
            ledger,
            job_plan=job_plan,
            cover=cover,
            alive=farm.check_alive,
            note=farm.progress_note,
        )


def _print_notes(job_plan: JobPlan) -> None:
    """What planning reports (passages in a language no voice of the job speaks), before anything renders."""
    for note in job_plan.notes:
        print(f"note: {note}", file=sys.stderr)


def _requeue_unstored(job: str, storage: Storage, ledger: Ledger, settings: Settings) -> None:
    """After a local process died: queue again every segment of the job not stored yet.

    The dead process's messages would wait for the visibility timeout, and one
    it had just taken off a queue is lost to Redis; a copy of a message that a
    live worker holds costs a HEAD (or a render of the same audio), never a
    different output.
    """
    from producer.resume import resume_job

    resume_job(job, storage=storage, ledger=ledger, app=create_app(settings), settings=settings, force=True)


@contextmanager
def _rerun_hint_on_error(storage: Storage, job_plan: JobPlan) -> Iterator[None]:
    """A render that fails says what a rerun of the same command reuses (the CLI prints notes)."""
    try:
        yield
    except VoxfarmError as exc:
        exc.add_note(rerun_hint(storage, job_plan))
        raise


def _render_on(
    args: argparse.Namespace,
    settings: Settings,
    storage: Storage,
    ledger: Ledger,
    *,
    job_plan: JobPlan,
    cover: bytes | None,
    alive: Callable[[], None] | None = None,
    note: Callable[[], str] | None = None,
) -> int:
    app = create_app(settings)
    result = submit_plan(job_plan, storage=storage, ledger=ledger, app=app, replace=True, cover=cover)
    print(f"{result.total} segments: {result.reused} reused, {result.enqueued} to render", file=sys.stderr)
    final = watch(ledger, result.job, show=True, alive=alive, note=note)
    if final.state != JobState.DONE:
        print(describe(final), file=sys.stderr)
        print(rerun_hint(storage, job_plan), file=sys.stderr)
        return 1
    manifest = _download(storage, result.job, args.output)
    print(
        f"{len(manifest.chapters)} chapters, {manifest.duration_s / 60:.1f} min of audio in {args.output}",
        file=sys.stderr,
    )
    return 0


def _download(storage: Storage, job: str, output: Path) -> Manifest:
    try:
        manifest = Manifest.model_validate_json(storage.get_bytes(manifest_path(job)))
    except NotFoundError as exc:
        raise NotFoundError(f"job {job} has no manifest yet; is it finished? (`voxfarm status {job}`)") from exc
    output.mkdir(parents=True, exist_ok=True)
    names = [chapter.file for chapter in manifest.chapters] + list(manifest.files.values())
    names += [name for chapter in manifest.chapters for name in chapter.subtitles.values()]
    for name in names:
        storage.get_file(f"{job_dir(job)}/{name}", output / name)
    (output / "manifest.json").write_text(manifest.model_dump_json(indent=2))
    return manifest


def _operations(settings: Settings) -> Operations:
    from producer.operations import Operations

    return Operations.from_settings(settings)


def resume(args: argparse.Namespace, settings: Settings) -> int:
    result = _operations(settings).resume(args.job, force=args.force)
    if args.json:
        print_json(result.__dict__)
    elif result.planning:
        rebuilt = " (ledger rebuilt)" if result.rebuilt else ""
        print(f"{result.job}: not planned yet; handed to the control service to plan{rebuilt}")
    else:
        print(
            f"{result.job}: {result.stored}/{result.total} segments stored, {result.enqueued} to dispatch again, "
            f"{result.in_flight} left in flight"
            + (", ledger rebuilt" if result.rebuilt else "")
            + (", assembling" if result.assembling else "")
        )
    return 0


def pause(args: argparse.Namespace, settings: Settings) -> int:
    current = _operations(settings).pause(args.job)
    print(f"{current.job}: {current.state}; `voxfarm resume {current.job}` lets it go on")
    return 0


def cancel(args: argparse.Namespace, settings: Settings) -> int:
    current = _operations(settings).cancel(args.job)
    print(f"{current.job}: {current.state}; {current.done}/{current.total} segments stored stay stored")
    return 0


def priority(args: argparse.Namespace, settings: Settings) -> int:
    current = _operations(settings).set_priority(args.job, args.priority)
    print(f"{current.job}: priority {current.meta.get('priority')}")
    return 0


def tenants(args: argparse.Namespace, settings: Settings) -> int:
    from producer.tenants import as_dict

    operations = _operations(settings)
    if getattr(args, "tenants_command", None) == "set":
        if args.weight is None and args.quota is None:
            raise BadInputError("nothing to set: give --weight and/or --quota")
        operations.set_tenant(args.name, weight=args.weight, quota=args.quota)
    found = operations.tenants()
    if args.json:
        print_json([as_dict(t) for t in found])
        return 0
    for tenant in found:
        quota = "-" if tenant.quota is None else str(tenant.quota)
        print(f"{tenant.name:40s} weight {tenant.weight:g}  quota {quota}")
    return 0


def download(args: argparse.Namespace, settings: Settings) -> int:
    manifest = _download(_storage(settings), args.job, args.output)
    print(f"{len(manifest.chapters)} chapters of {manifest.title!r} in {args.output}", file=sys.stderr)
    return 0


def status(args: argparse.Namespace, settings: Settings) -> int:
    ledger = Ledger.from_settings(settings)
    current = ledger.status(args.job)
    if args.json:
        print_json(current.as_dict())
    else:
        print(describe(current))
    return 0 if current.state != JobState.FAILED else 1


def jobs(args: argparse.Namespace, settings: Settings) -> int:
    ledger = Ledger.from_settings(settings)
    ledger.ping()
    found = ledger.all_statuses()  # finished jobs expire from the ledger; their output stays in storage
    if args.json:
        print_json([s.as_dict() for s in found])
        return 0
    for current in found:
        tenant, priority = current.meta.get("tenant", "default"), current.meta.get("priority", "50")
        print(
            f"{current.job:48s} {current.state:10s} {current.done:6d}/{current.total:<6d} "
            f"{tenant[:16]:16s} {priority:>3s} {current.title[:40]}"
        )
    return 0


def watch_job(args: argparse.Namespace, settings: Settings) -> int:
    ledger = Ledger.from_settings(settings)
    final = watch(ledger, args.job, timeout_s=args.timeout, show=True)
    print(describe(final))
    return 0 if final.state == JobState.DONE else 1


def worker(args: argparse.Namespace, settings: Settings) -> int:
    from workers.worker import WorkerOptions, run_worker

    options = WorkerOptions(
        device=args.device,
        engine=args.engine,
        voice=args.voice,
        model=args.model,
        metrics_port=args.metrics_port,
        ready_file=args.ready_file,
        hostname=args.hostname,
        warmup_only=args.warmup_only,
        concurrency=args.concurrency,
    )
    return run_worker(settings, options)


def pool(args: argparse.Namespace, settings: Settings) -> int:
    import logging

    from workers.devices import parse_device_spec, probe
    from workers.pool import build_pool

    spec = parse_device_spec(args.devices)
    found = probe(spec.family).count if spec.all or spec.family != "cpu" else None
    devices = [str(one) if one.family != "cpu" else "cpu" for one in spec.expand(found)]
    supervisor = build_pool(
        devices,
        metrics_port=settings.metrics_port if args.metrics_port is None else args.metrics_port,
        health_port=args.health_port,
        health_host=settings.metrics_host,
        engine=args.engine,
        voice=args.voice,
        ready_dir=args.ready_dir,
        grace_s=args.grace if args.grace is not None else settings.batch_time_limit_s + 30,
        log_level=logging.getLevelName(logging.getLogger().level),
        json_logs=bool(args.log_json),
    )
    return supervisor.run()


def control(args: argparse.Namespace, settings: Settings) -> int:
    from producer.control import run_control

    port = args.metrics_port if args.metrics_port >= 0 else None
    return run_control(settings, concurrency=args.concurrency, metrics_port=port)


def bench(args: argparse.Namespace, settings: Settings) -> int:
    if args.admission and args.engine_standin:
        raise BadInputError("--admission and --engine-standin are two benchmarks: run one at a time")
    if args.admission:
        return _bench_admission(args)
    if args.engine_standin:
        return _bench_standin(args)
    from producer.bench import BenchOptions, format_table, run_bench
    from producer.samples import SAMPLE_BOOK

    book = args.book or SAMPLE_BOOK
    options = BenchOptions(
        book=book,
        chapter=args.chapter - 1,
        padding_book=args.padding_book or book,
        padding_batch=args.padding_batch,
        padding_sample=args.padding_sample,
        padding_seed=args.padding_seed,
        sweep_edges=tuple(int(v) for v in args.sweep_edges.split(",")),
        sweep_sizes=tuple(int(v) for v in args.sweep_sizes.split(",")),
        repeats=args.repeats,
        workers=args.workers,
        min_seconds=args.min_seconds,
    )
    report = run_bench(options)
    return _report(format_table(report), report, args.json)


def _bench_admission(args: argparse.Namespace) -> int:
    from producer.bench.admission import AdmissionOptions, format_admission, run_admission

    if args.segments < 1 or (args.window is not None and args.window < 1):
        raise BadInputError("--segments and --window take a positive number")
    report = run_admission(AdmissionOptions(segments=args.segments, window=args.window))
    return _report(format_admission(report), {"admission": report}, args.json)


def _bench_standin(args: argparse.Namespace) -> int:
    from producer.bench.standin import DEFAULT_BOOK, StandInOptions, format_standin, run_standin_bench

    options = StandInOptions(
        book=args.book or DEFAULT_BOOK,
        workers=args.workers,
        unit_segments=args.unit_segments,
        upload_processes=args.upload_processes,
    )
    report = run_standin_bench(options)
    return _report(format_standin(report), report, args.json)


def _report(table: str, figures: dict[str, Any], json_file: Path | None) -> int:
    """A benchmark's figures: the table on stdout and, when asked, the same figures as JSON."""
    print(table)
    if json_file:
        json_file.write_text(json.dumps(figures, indent=2))
    return 0


def voices(args: argparse.Namespace, settings: Settings) -> int:
    from producer.piper_voices import add_piper_voice, preset_rows, print_added
    from producer.qwen_voices import add_voice, list_voices
    from shared.presets import PresetRegistry

    if getattr(args, "voices_command", None) == "add":
        if args.piper is None:
            return add_voice(args, settings)
        storage = _storage(settings)
        print_added(add_piper_voice(args, VoiceRegistry(settings.voices_dir, storage, settings.effective_cache_dir)))
        return 0
    found: Storage | None
    try:
        found = _storage(settings) if settings.storage_url else None
    except VoxfarmError:
        found = None
    registry = VoiceRegistry(settings.voices_dir, found, settings.effective_cache_dir)
    presets = preset_rows(PresetRegistry(registry))
    return list_voices(registry.available(), settings, found, bool(getattr(args, "json", False)), presets)


def models(args: argparse.Namespace, settings: Settings) -> int:
    from producer.qwen_voices import models as run_models

    return run_models(args, settings)


def cast(args: argparse.Namespace, settings: Settings) -> int:
    from producer.cast_command import cast_book

    return cast_book(args, settings)
