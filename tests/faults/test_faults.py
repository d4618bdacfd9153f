"""Faults injected into a real render: killed workers (also one of the embedded farm's), a lost
broker, a storage outage, poison, a broken engine, racing workers and a network partition.
Nothing may be lost or stored twice.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import redis

from producer.embedded import LocalRedis
from producer.ingest import load_book
from producer.planner import PlanOptions, default_params, plan_book
from producer.submit import enqueue_segments, group_by_key
from shared.buckets import BucketPolicy, queue_name
from shared.celery_app import create_app
from shared.dead_letters import list_dead_letters
from shared.keys import plan_path, segment_path
from shared.ledger import Ledger
from shared.schema import JobPlan, SegmentPlan, SegmentTask
from shared.settings import load_settings
from shared.voices import VoiceFiles, VoiceRegistry
from tests.faults.conftest import (
    FAST,
    QUIET,
    Reference,
    assert_complete_and_identical,
    assert_stored_and_identical,
    storage_for,
    submit,
    wait_done_at_least,
    write_fault_book,
)
from tests.support.broken_voice import HANG_ID, write_broken_voice, write_good_voice, write_hanging_voice
from tests.support.fault_report import record
from tests.support.logs import stored_keys
from tests.support.netns import Host
from tests.support.processes import FarmProcesses, wait_for_state
from tests.support.raw_messages import celery_body, envelope, push
from tests.support.services import SeaweedS3

pytestmark = pytest.mark.timeout(420)


def test_sigkill_of_a_worker_mid_batch(
    farm: FarmProcesses, farm_env: dict[str, str], reference: Reference, tmp_path: Path
) -> None:
    first = farm.worker("cpu:0", extra_env=FAST, name="killed")
    farm.control(extra_env=FAST)
    job = submit(farm, write_fault_book(tmp_path), env=FAST)
    wait_done_at_least(farm_env["VOXFARM_REDIS_URL"], job, 3)
    first.signal(signal.SIGKILL)
    first.process.wait(10)

    time.sleep(6)  # past the visibility timeout: the next worker restores what the killed one held
    second = farm.worker("cpu:0", extra_env=FAST, name="survivor")

    assert_complete_and_identical(storage_for(farm_env), farm_env["VOXFARM_REDIS_URL"], job, reference)
    rendered = stored_keys([first.log(), second.log()])
    assert len(rendered) == len(set(rendered)) == reference.segments


def test_sigterm_of_a_worker_mid_batch_drains_it(
    farm: FarmProcesses, farm_env: dict[str, str], reference: Reference, tmp_path: Path
) -> None:
    first = farm.worker("cpu:0", extra_env=FAST, name="drained")
    farm.control(extra_env=FAST)
    job = submit(farm, write_fault_book(tmp_path), env=FAST)
    wait_done_at_least(farm_env["VOXFARM_REDIS_URL"], job, 3)
    first.signal(signal.SIGTERM)
    assert first.process.wait(60) == 0, first.log()[-3000:]
    done_at_exit = Ledger(redis.Redis.from_url(farm_env["VOXFARM_REDIS_URL"])).status(job).done

    second = farm.worker("cpu:0", extra_env=FAST, name="successor")

    assert_complete_and_identical(storage_for(farm_env), farm_env["VOXFARM_REDIS_URL"], job, reference)
    drained = stored_keys([first.log()])
    assert len(drained) == done_at_exit, "the drained worker left a segment half-done"
    assert not set(drained) & set(stored_keys([second.log()])), "a drained segment was rendered again"


def embedded_workers(render: int) -> list[int]:
    """PIDs of the `voxfarm worker` processes a render's embedded farm started."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == render and argv[1:4] == [b"-m", b"producer.cli", b"worker"]:
            found.append(int(entry.name))
    return sorted(found)


def test_sigkill_of_an_embedded_worker_mid_render(
    farm_env: dict[str, str], reference: Reference, tmp_path: Path
) -> None:
    # The embedded default: no Redis configured, so `voxfarm render` starts its own farm (and the
    # default visibility timeout of an hour: the render itself must queue again what the killed worker held).
    env = {k: v for k, v in {**os.environ, **farm_env}.items() if k != "VOXFARM_REDIS_URL"}
    output = tmp_path / "out"
    with (tmp_path / "render.err").open("w+b") as errors:
        book = write_fault_book(tmp_path)
        render = subprocess.Popen(
            [sys.executable, "-m", "producer.cli", "render", str(book), "-o", str(output), "--workers", "2", *QUIET],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
        try:
            storage = storage_for(farm_env)
            deadline = time.monotonic() + 240
            while len(list(storage.list("segments"))) < 3:
                assert render.poll() is None and time.monotonic() < deadline, "the render stopped or stalled"
                time.sleep(0.05)
            victim = embedded_workers(render.pid)[0]
            os.kill(victim, signal.SIGKILL)
            stored_at_kill = len(list(storage.list("segments")))
            code = render.wait(240)
        finally:
            if render.poll() is None:
                render.terminate()  # the render stops the farm it started
                render.wait(60)
            errors.seek(0)
            stderr = errors.read().decode(errors="replace")
    assert code == 0, stderr[-3000:]
    assert stored_at_kill < reference.segments, "the render had finished before the kill"
    job = json.loads((output / "manifest.json").read_text())["job"]
    reported = re.search(r"restarted worker-\d \(exit code -9\)", stderr)
    assert_stored_and_identical(storage, job, reference, restart_reported=reported is not None)
    assert reported, stderr[-3000:]


def test_redis_restarted_with_its_data_lost_mid_job(
    farm: FarmProcesses, farm_env: dict[str, str], reference: Reference, private_redis: LocalRedis, tmp_path: Path
) -> None:
    env = {**FAST, "VOXFARM_REDIS_URL": private_redis.url}
    farm.worker("cpu:0", extra_env=env)
    farm.worker("cpu:1", extra_env=env)
    farm.control(extra_env=env)
    job = submit(farm, write_fault_book(tmp_path), env=env)
    wait_done_at_least(private_redis.url, job, 3)

    private_redis.stop()  # queues, in-flight messages and the ledger are gone
    time.sleep(2)
    private_redis.start()

    assert_complete_and_identical(storage_for(farm_env), private_redis.url, job, reference)


def test_s3_stopped_for_20_seconds_mid_job(
    farm: FarmProcesses, farm_env: dict[str, str], reference: Reference, s3_server: SeaweedS3, tmp_path: Path
) -> None:
    farm.worker("cpu:0", extra_env=FAST)
    farm.control(extra_env=FAST)
    job = submit(farm, write_fault_book(tmp_path), env=FAST)
    wait_done_at_least(farm_env["VOXFARM_REDIS_URL"], job, 3)

    s3_server.pause()
    try:
        time.sleep(20)
    finally:
        s3_server.resume()

    assert_complete_and_identical(storage_for(farm_env), farm_env["VOXFARM_REDIS_URL"], job, reference)


def test_a_poison_segment_in_a_batch_is_isolated_and_reported(
    farm: FarmProcesses, farm_env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **FAST,
        "VOXFARM_BATCH_TUNING": "off",
        "VOXFARM_MAX_BATCH_ITEMS": "4",
        "VOXFARM_MAX_WAIT_MS": "300",
        "VOXFARM_MAX_RETRIES": "1",
    }
    worker = farm.worker("cpu:0", extra_env=env, extra_args=["--concurrency", "16"])
    broker = redis.Redis.from_url(farm_env["VOXFARM_REDIS_URL"])
    plan = _stored_fault_plan(farm_env, tmp_path, VoiceRegistry().resolve("en_US-joe-medium"))
    storage = storage_for(farm_env)
    ledger = Ledger(broker)
    ledger.create_job(plan.job, total=plan.segments_total, reused=[], meta={"title": plan.title})
    groups = list(group_by_key(plan.segments).values())
    poison = groups[5][0]
    healthy = [g for g in groups if g[0].index != poison.index]
    settings = load_settings(redis_url=farm_env["VOXFARM_REDIS_URL"])
    enqueue_segments(plan, healthy, app=create_app(settings), ledger=ledger)
    bad = _task(plan, poison, [1, 0, 60000, *poison.ids[3:]])
    queue = queue_name(plan.model, poison.bucket)
    push(broker, queue, envelope(celery_body({"segment": bad.model_dump(mode="json")}), queue=queue))

    assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], plan.job, {"failed"}, 240) == "failed"
    status = ledger.status(plan.job)
    stored = {path for path in storage.list("segments")}
    expected = {segment_path(plan.voice, s.key) for s in plan.segments if s.index != poison.index}
    _record_partial(expected, stored, status.failed)
    assert set(status.failed) == {poison.index}
    assert status.done == plan.segments_total - 1
    assert {s.index for s in plan.segments if storage.exists(segment_path(plan.voice, s.key))} == {
        s.index for s in plan.segments
    } - {poison.index}
    assert [entry["segment"]["key"] for entry in list_dead_letters(broker)] == [poison.key]
    assert "splitting to isolate" in worker.log(), "the poison segment never shared a batch"


def test_a_segment_that_hangs_the_card_takes_none_of_its_unit_mates_with_it(
    farm: FarmProcesses, farm_env: dict[str, str], tmp_path: Path
) -> None:
    """A work unit whose segments share an engine call, one of them hanging the card: the watchdog stops
    the worker, its supervisor restarts it, the unit comes back whole; each suspect is then rendered alone,
    so only the culprit takes workers down, and it alone is dead-lettered."""
    voice_id = "en_US-hang-medium"
    voices = write_hanging_voice(tmp_path / "voices", voice_id)
    env = {
        **FAST,
        "VOXFARM_VOICES_DIR": str(voices),
        "VOXFARM_BATCH_TUNING": "off",
        "VOXFARM_MAX_BATCH_ITEMS": "4",
        "VOXFARM_MAX_WAIT_MS": "300",
        "VOXFARM_BATCH_TIME_LIMIT_S": "5",
    }
    pool = farm.start(
        "hang-pool",
        ["pool", "--devices", "cpu:0", "--voice", voice_id, "--health-port", "0", "--metrics-port", "0"],
        extra_env=env,
    )
    broker = redis.Redis.from_url(farm_env["VOXFARM_REDIS_URL"])
    plan = _stored_fault_plan(farm_env, tmp_path, VoiceRegistry(voices).resolve(voice_id))
    firsts = [group[0] for group in group_by_key(plan.segments).values()]
    bucket = max({s.bucket for s in firsts}, key=lambda b: sum(s.bucket == b for s in firsts))
    mates = [s for s in firsts if s.bucket == bucket][:4]
    assert len(mates) == 4, "the fault book has four sentences of one bucket"
    culprit = mates[1]
    unit = [
        _task(plan, s, [*s.ids[:3], HANG_ID, *s.ids[4:]] if s is culprit else s.ids).model_dump(mode="json")
        for s in mates
    ]
    storage = storage_for(farm_env)
    ledger = Ledger(broker)
    ledger.create_job(plan.job, total=len(mates), reused=[], meta={"title": plan.title})
    queue = queue_name(plan.model, bucket)
    push(broker, queue, envelope(celery_body({"unit": unit}), queue=queue))

    assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], plan.job, {"failed"}, 300) == "failed"
    status = ledger.status(plan.job)
    expected = {segment_path(plan.voice, s.key) for s in mates if s is not culprit}
    stored = set(storage.list("segments"))
    _record_partial(expected, stored, status.failed)
    assert sorted(status.failed) == [culprit.index] and status.done == 3
    assert stored == expected, "every unit-mate stored, the culprit not"
    letters = list_dead_letters(broker)
    assert [entry["segment"]["key"] for entry in letters] == [culprit.key]
    assert "took down 3 workers" in letters[0]["reason"]
    log = pool.log()
    assert log.count("time limit") >= 3, "the culprit hung three workers"
    assert "rendering it alone" in log


def _record_partial(expected: set[str], stored: set[str], failed: Mapping[int, object]) -> None:
    """The README row of a scenario whose job ends failed: what should be stored against what is."""
    record(
        segments=len(expected),
        lost=len(expected - stored),
        extra=len(stored - expected),
        identical=None,
        reported=sorted(failed),
    )


def _stored_fault_plan(farm_env: dict[str, str], tmp_path: Path, voice: VoiceFiles) -> JobPlan:
    """The fault book planned with the noise off, its plan stored as submit stores it (nothing enqueued)."""
    settings = load_settings(redis_url=farm_env["VOXFARM_REDIS_URL"])
    params = default_params(voice).model_copy(update={"noise_scale": 0.0, "noise_w": 0.0})
    plan = plan_book(
        load_book(write_fault_book(tmp_path)),
        PlanOptions("piper-onnx", voice, params, BucketPolicy.from_edges(settings.bucket_edges)),
    )
    storage_for(farm_env).put_bytes(plan_path(plan.job), plan.model_dump_json().encode())
    return plan


def _task(plan: JobPlan, segment: SegmentPlan, ids: list[int]) -> SegmentTask:
    """The message of one planned segment, with the token ids given (a hostile or a hanging one)."""
    return SegmentTask(
        job=plan.job,
        indexes=[segment.index],
        chapter=0,
        text=segment.text,
        ids=ids,
        voice=plan.voice,
        engine=plan.engine,
        params=plan.params,
        key=segment.key,
        bucket=segment.bucket,
        enqueued_at=time.time(),
    )


def test_a_worker_whose_engine_fails_on_every_call_hands_its_work_on(
    farm: FarmProcesses, farm_env: dict[str, str], reference: Reference, tmp_path: Path
) -> None:
    voice = "en_US-drill-medium"
    good = {**FAST, "VOXFARM_VOICES_DIR": str(write_good_voice(tmp_path / "good", voice))}
    bad = {**FAST, "VOXFARM_VOICES_DIR": str(write_broken_voice(tmp_path / "bad", voice))}
    broken = farm.start(
        "broken-pool",
        ["pool", "--devices", "cpu:1", "--voice", voice, "--health-port", "0", "--metrics-port", "0"],
        extra_env=bad,
    )
    time.sleep(8)  # let the broken worker warm up and start taking messages first
    farm.control(extra_env=good)
    job = submit(farm, write_fault_book(tmp_path), "--voice", voice, env=good)
    time.sleep(3)
    farm.worker("cpu:0", extra_env=good, extra_args=["--voice", voice])

    assert_complete_and_identical(storage_for(farm_env), farm_env["VOXFARM_REDIS_URL"], job, reference)
    broker = redis.Redis.from_url(farm_env["VOXFARM_REDIS_URL"])
    assert list_dead_letters(broker) == [], "a segment was blamed for the broken engine"
    log = broken.log()
    assert "engine is broken" in log and "handing segment" in log
    assert "restarting in" in log, "the broken worker did not exit for its supervisor to restart"


def test_two_workers_racing_on_the_same_segments(
    farm: FarmProcesses, farm_env: dict[str, str], reference: Reference, tmp_path: Path
) -> None:
    farm.worker("cpu:0", extra_env=FAST)
    farm.worker("cpu:1", extra_env=FAST)
    farm.control(extra_env=FAST)
    broker = redis.Redis.from_url(farm_env["VOXFARM_REDIS_URL"])
    job = submit(farm, write_fault_book(tmp_path), env=FAST)
    # Every segment enqueued a second time: two deliveries of each, racing on two workers.
    storage = storage_for(farm_env)
    plan = JobPlan.model_validate_json(storage.get_bytes(plan_path(job)))
    enqueue_segments(
        plan,
        list(group_by_key(plan.segments).values()),
        app=create_app(load_settings(redis_url=farm_env["VOXFARM_REDIS_URL"])),
        ledger=Ledger(broker),
    )

    assert_complete_and_identical(storage, farm_env["VOXFARM_REDIS_URL"], job, reference)


@pytest.fixture
def partitioned() -> Iterator[Host]:
    host = Host()
    host.create()
    yield host
    host.destroy()


def test_a_worker_host_cut_off_mid_batch_and_reconnected_after_redelivery(
    farm: FarmProcesses, reference: Reference, partitioned: Host, tmp_path: Path
) -> None:
    # Servers listen on the root end of the private link, where both "hosts" reach them.
    address = partitioned.root_address
    broker = LocalRedis(bind=f"{address} 127.0.0.1")
    broker.start()
    s3 = SeaweedS3(ip=address)
    s3.start()
    try:
        env = {
            **FAST,
            "VOXFARM_REDIS_URL": broker.url,
            "VOXFARM_STORAGE_URL": f"s3://{s3.new_bucket()}/farm",
            "VOXFARM_S3_ENDPOINT_URL": s3.endpoint,
            "VOXFARM_MAX_WAIT_MS": "20",
        }
        remote = farm.worker("cpu:0", extra_env=env, name="remote", wrap=partitioned.command)
        farm.control(extra_env=env)
        job = submit(farm, write_fault_book(tmp_path), env=env)
        wait_done_at_least(broker.url, job, 2)
        partitioned.cut()
        held = redis.Redis.from_url(broker.url).hlen("unacked")
        assert held >= 1, "the remote worker held nothing when the link was cut"

        time.sleep(6)  # past the visibility timeout: its messages go to the next worker
        local = farm.worker("cpu:1", extra_env=env, name="local")
        assert wait_for_state(broker.url, job, {"done"}, 240) == "done"
        assert remote.alive(), "the cut-off worker died"

        finished_before_heal = len(stored_keys([remote.log()], status="rendered"))
        partitioned.heal()
        deadline = time.monotonic() + 180
        while len(stored_keys([remote.log()], status="rendered")) <= finished_before_heal:
            assert time.monotonic() < deadline, "the cut-off worker never finished the batch it held"
            time.sleep(0.5)
        assert remote.alive()

        storage = storage_for(env)
        assert_complete_and_identical(storage, broker.url, job, reference)
        plan = JobPlan.model_validate_json(storage.get_bytes(plan_path(job)))
        assert set(stored_keys([remote.log(), local.log()])) == {s.key for s in plan.segments}
    finally:
        farm.stop_all()
        s3.stop()
        broker.stop()
        subprocess.run(["ip", "link", "del", partitioned.host_side], check=False, capture_output=True)
