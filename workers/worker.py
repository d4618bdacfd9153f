"""`voxfarm worker`: one process, one card, one resident model.

Start-up order matters: pin the card (visible-devices variable) before any
vendor runtime is imported, open storage and Redis so a misconfiguration
fails fast, load and warm up the engine, and only then report ready and
start consuming. On SIGTERM Celery stops taking messages, the tasks in hand
finish (the batcher drains), uploads flush, and the process exits.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shared.audio import flac_encoder
from shared.buckets import BucketPolicy, interactive_queue_name, model_name
from shared.celery_app import create_app
from shared.engines import engine_spec
from shared.errors import FatalError
from shared.ledger import Ledger
from shared.metrics import worker_metrics
from shared.presets import PresetRegistry
from shared.qwen.store import ModelFiles, ModelStore
from shared.schema import SegmentTask
from shared.settings import Settings
from shared.storage import Storage
from shared.voices import VoiceFiles, VoiceRegistry
from workers.batcher import Batcher, BatchPolicy
from workers.costs import start_cost_reports
from workers.devices.base import DeviceBackend
from workers.health import HealthServer, HealthState
from workers.offload import Offload, StorageSpec
from workers.presence import JobStates, Presence
from workers.records import ProcessRecord, ReadyRecord, WarmupSummary
from workers.runner import BatchRunner
from workers.runtime import WorkerRuntime, install_runtime
from workers.tasks import register_synthesis
from workers.telemetry import MetricsObserver, WorkerIdentity

if TYPE_CHECKING:
    from workers.engines.qwen3.prompts import PromptStore

log = logging.getLogger(__name__)


@dataclass
class WorkerOptions:
    device: str = "cpu"
    engine: str | None = None
    voice: str | None = None
    model: str | None = None
    """qwen3-tts: the checkpoint to serve (default: the checkpoint of ``voice``)."""
    metrics_port: int | None = None
    ready_file: Path | None = None
    hostname: str | None = None
    warmup_only: bool = False
    concurrency: int | None = None
    slot: int | None = None
    """This worker's place in its pool; labels CPU workers, which share one 'card'."""


def run_worker(settings: Settings, options: WorkerOptions) -> int:
    """Run until told to stop; the return value is the process exit code."""
    from workers.devices import open_device, parse_device_spec
    from workers.engines import default_engine_for

    family = parse_device_spec(options.device).family
    engine_name = options.engine or settings.engine or default_engine_for(family)
    spec = engine_spec(engine_name)
    device = open_device(options.device, needs_torch=spec.needs_torch, pin=True)
    voice_id = options.voice or settings.voice
    # What this worker serves, which names its queues: a Piper model (every preset of it, whatever its speaker
    # and settings), or a Qwen3-TTS checkpoint (all its voices).
    storage = Storage.from_settings(settings)
    storage.check()
    served = voice_id
    if spec.per_checkpoint:
        from workers.engines.qwen3.serving import checkpoint_to_serve

        served = checkpoint_to_serve(settings, options.model, voice_id)
    else:
        # A preset names its model before the first report, so no series is ever labelled with the preset.
        registry = VoiceRegistry(settings.voices_dir, storage, settings.effective_cache_dir)
        preset = PresetRegistry(registry).find(voice_id)
        if preset is not None:
            log.info("voice %s is a preset of model %s: serving the model's queues", voice_id, preset.model)
            served = preset.model
    card = str(options.slot or 0) if device.family == "cpu" else device.card
    identity = WorkerIdentity(engine_name, served, device.family, card)
    hostname = options.hostname or f"voxfarm-{device.family}{device.card}-{os.getpid()}@{socket.gethostname()}"

    metrics = worker_metrics()
    policy = BucketPolicy.from_edges(settings.bucket_edges)
    telemetry = MetricsObserver(metrics, identity, edges=policy.edges)
    health = HealthState(options.ready_file)
    telemetry(ReadyRecord(False))
    port = settings.metrics_port if options.metrics_port is None else options.metrics_port
    server = None
    if port or options.metrics_port == 0:
        server = HealthServer(settings.metrics_host, port, metrics.registry, health)
        server.start()
        log.info("metrics and probes on http://%s:%d", settings.metrics_host, server.port)

    ledger = Ledger.from_settings(settings)
    ledger.ping()
    started = time.perf_counter()
    from workers.engines import create_engine
    from workers.warmup import warm_up

    voice: VoiceFiles | ModelFiles
    prompts: PromptStore | None = None
    if spec.per_checkpoint:
        from workers.engines.qwen3.prompts import PromptStore

        voice = ModelStore(settings.models_dir, storage, settings.effective_cache_dir).resolve(served)
        prompts = PromptStore(storage, ledger.redis, hostname)
    else:
        voice = PresetRegistry(registry).resolve(voice_id).files
    engine = create_engine(
        engine_name,
        voice,
        device.backend,
        threads=settings.ort_threads,
        cache_dir=settings.effective_cache_dir / "compile",
        prompts=prompts,
    )
    warmed = warm_up(
        engine, device, policy, settings, voice_checksum=voice.checksum, cache_dir=settings.effective_cache_dir
    )
    tuned = warmed.sizes
    telemetry(
        WarmupSummary(
            time.perf_counter() - started,
            device.name,
            engine.version,
            device.versions,
            {edge: tuned[edge] for edge in policy.edges},
            warmed.records,
        )
    )
    if options.warmup_only:
        log.info("warm-up finished in %.1fs; exiting (--warmup-only)", time.perf_counter() - started)
        engine.close()
        if server:
            server.stop()
        return 0

    # Items per engine call: the tuned batch, or several where the engine decodes them sorted by frames.
    calls = warmed.call_sizes
    batch_policy = BatchPolicy(
        max_items=max(calls.values()),
        max_tokens=max(edge * size for edge, size in calls.items()),
        max_wait_s=settings.max_wait_ms / 1000.0,
        items_per_edge=calls,
        fold_fraction=settings.fold_fraction,
        interactive_wait_s=settings.interactive_wait_ms / 1000.0,
    )
    batcher: Batcher[SegmentTask] = Batcher(batch_policy, policy.edges)

    def on_fatal(exc: BaseException) -> None:
        log.critical("fatal device error, stopping the worker: %s", exc)
        health.alive = False
        os.kill(os.getpid(), signal.SIGTERM)

    offload = None
    if settings.upload_processes:
        where = StorageSpec(settings.effective_storage_url, settings.s3_endpoint_url, settings.s3_region)
        offload = Offload(where, settings.upload_processes)
        offload.warm()
    runner = BatchRunner(
        engine,
        batcher,
        storage,
        # Each upload thread waits on one pool process: twice as many keep every process busy.
        upload_threads=max(2, 2 * settings.upload_processes),
        offload=offload,
        time_limit_s=settings.batch_time_limit_s,
        observer=telemetry,
        on_fatal=on_fatal,
    )
    app = create_app(settings)
    register_synthesis(app)
    states = JobStates(ledger.redis)
    install_runtime(
        WorkerRuntime(settings, app, storage, ledger, batcher, runner, identity, telemetry, hostname, states)
    )
    runner.start()
    if settings.cost_report_dir is not None:
        start_cost_reports(settings.cost_report_dir, hostname.replace("@", "_").replace("/", "_"))
    sampler = threading.Thread(
        target=_sample_memory, args=(device.backend, telemetry, health), daemon=True, name="voxfarm-memory"
    )
    sampler.start()

    model = model_name(engine_name, served)
    queues = [interactive_queue_name(model), *policy.queues(model)]
    largest_batch = max(batch_policy.capacity(edge) for edge in policy.edges)
    concurrency = options.concurrency or max(2, 2 * largest_batch)
    presence = Presence(ledger.redis, hostname, model, calls)
    presence.start()
    health.set_ready(True)
    telemetry(ReadyRecord(True))
    log.info(
        "worker %s ready on %s: %d queues, up to %d segments in hand, FLAC by %s",
        hostname,
        device.name,
        len(queues),
        concurrency,
        flac_encoder(),
    )
    worker = app.Worker(
        hostname=hostname,
        pool="threads",
        concurrency=concurrency,
        queues=queues,
        without_gossip=True,
        without_mingle=True,
        optimization="fair",
        loglevel=logging.getLevelName(logging.getLogger().level),
    )
    try:
        worker.start()
    finally:
        presence.stop()
        health.set_ready(False)
        telemetry(ReadyRecord(False))
        runner.stop()
        if not runner.stuck:  # never release what a hung call is still using
            engine.close()
        install_runtime(None)
        if server:
            server.stop()
    if runner.fatal is not None:
        if runner.stuck:
            # The interpreter's exit would wait on, or abort in, the engine call that never returned.
            log.critical("worker stopped after a fatal error, an engine call still hung: %s", runner.fatal)
            logging.shutdown()
            os._exit(FatalError.exit_code)
        raise FatalError(f"worker stopped after a fatal error: {runner.fatal}")
    return int(worker.exitcode or 0)


def _sample_memory(
    backend: DeviceBackend, report: Callable[[ProcessRecord], None], health: HealthState, every_s: float = 10.0
) -> None:
    """Device memory figures for the dashboard, sampled off the hot path."""
    while health.alive:
        try:
            stats = backend.memory()
        except Exception:  # noqa: BLE001 - a failed reading must never stop the worker
            stats = None
        if stats is not None:
            report(stats)
        time.sleep(every_s)
