"""Fair share between books on a real farm, the dispatcher's fencing, and the job operations' errors.

Shares are measured as the rendering scheduler users see them: the seconds
of audio each job got stored while both were rendering (from the second
job's first stored segment until the first job finished), read from the
stored segments themselves.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import redis

from producer.dispatcher import Dispatcher
from producer.ingest import load_book
from producer.planner import PlanOptions, default_params, plan_book
from producer.submit import submit_plan
from shared.audio import decode_audio
from shared.buckets import BucketPolicy
from shared.celery_app import create_app
from shared.keys import plan_path, segment_path
from shared.ledger import Ledger
from shared.schema import JobPlan
from shared.settings import load_settings
from shared.storage import Storage, open_storage
from shared.voices import VoiceRegistry
from tests.support.books import write_book
from tests.support.processes import FarmProcesses, wait_for_state

pytestmark = pytest.mark.timeout(600)

WORDS = ["harbour", "lantern", "meadow", "orchard", "quarry", "river", "signal", "tower", "valley", "willow"]


def numbered_book(directory: Path, title: str, sentences: int) -> Path:
    """A one-chapter book of distinct short sentences (each its own content key)."""
    lines = [
        f"{title} line {n}: the {WORDS[n % 10]} and the {WORDS[(n * 3 + 1) % 10]} waited by the road."
        for n in range(1, sentences + 1)
    ]
    text = f"---\ntitle: {title}\nlanguage: en\n---\n\n# {title}\n\n## One\n\n" + "\n\n".join(lines) + "\n"
    return write_book(directory, text, f"{title.lower().replace(' ', '-')}.md")


def _storage(env: dict[str, str]) -> Storage:
    return open_storage(env["VOXFARM_STORAGE_URL"], endpoint_url=env["VOXFARM_S3_ENDPOINT_URL"])


class DoneTimes:
    """When each segment of some jobs was first seen done in the ledger (a poller, not a clock in the farm)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.first_seen: dict[str, dict[int, float]] = {}
        self.jobs: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def watch(self, job: str) -> None:
        self.first_seen.setdefault(job, {})
        self.jobs.append(job)

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            now = time.time()
            for job in list(self.jobs):
                for index in self.ledger.done_indexes(job):
                    self.first_seen[job].setdefault(index, now)

    def __enter__(self) -> DoneTimes:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _submit(farm: FarmProcesses, book: Path, *args: str) -> str:
    result = farm.cli("submit", str(book), "--json", *args)
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["job"])


def _overlap_shares(
    storage: Storage, times: DoneTimes, first: str, second: str, submitted: float
) -> tuple[float, int, int]:
    """(first job's share of audio seconds, its segments, the second's) while both rendered."""
    start = min(times.first_seen[second].values())
    end = min(max(times.first_seen[first].values()), max(times.first_seen[second].values()))
    seconds = {}
    counts = {}
    for job in (first, second):
        plan = JobPlan.model_validate_json(storage.get_bytes(plan_path(job)))
        durations = {}
        for segment in plan.segments:
            samples, rate = decode_audio(storage.get_bytes(segment_path(plan.voice, segment.key)))
            durations[segment.index] = len(samples) / rate
        inside = [i for i, at in times.first_seen[job].items() if start <= at <= end]
        seconds[job] = sum(durations[i] for i in inside)
        counts[job] = len(inside)
    assert start >= submitted
    return seconds[first] / (seconds[first] + seconds[second]), counts[first], counts[second]


def _render_two(
    farm: FarmProcesses, farm_env: dict[str, str], tmp_path: Path, first_args: list[str], second_args: list[str]
) -> tuple[float, int, int, int]:
    """Render two books, the second submitted while the first renders; (share, n1, n2, first's ahead)."""
    farm.worker("cpu:0")
    farm.worker("cpu:1")
    farm.control()
    url = farm_env["VOXFARM_REDIS_URL"]
    ledger = Ledger(redis.Redis.from_url(url))
    with DoneTimes(ledger) as times:
        first = _submit(farm, numbered_book(tmp_path, "First Book", 48), *first_args)
        times.watch(first)
        while ledger.status(first).done < 4:
            time.sleep(0.05)
        times.watch("second-book")
        second = _submit(farm, numbered_book(tmp_path, "Second Book", 48), "--job", "second-book", *second_args)
        submitted = ledger.status(second).created_at  # when it was registered, not when the command started
        done_at_submit = sum(1 for at in times.first_seen[first].values() if at < submitted)
        assert wait_for_state(url, first, {"done"}, 400) == "done"
        assert wait_for_state(url, second, {"done"}, 400) == "done"
    share, n1, n2 = _overlap_shares(_storage(farm_env), times, first, second, submitted)
    first_stored_at = min(times.first_seen[second].values())
    ahead = sum(1 for at in times.first_seen[first].values() if submitted <= at < first_stored_at)
    print(f"share of the first book {share:.3f} ({n1} vs {n2} segments); {ahead} of it stored before the second's")
    assert done_at_submit < 48
    return share, n1, n2, ahead


def test_two_books_of_equal_weight_share_the_farm_evenly_and_the_second_starts_at_once(
    farm: FarmProcesses, farm_env: dict[str, str], tmp_path: Path
) -> None:
    share, n1, n2, ahead = _render_two(farm, farm_env, tmp_path, ["--tenant", "alpha"], ["--tenant", "beta"])

    assert n1 >= 10 and n2 >= 10, "the books hardly overlapped"
    assert 0.40 <= share <= 0.60
    # Two batch turnarounds of this farm: two workers, one segment per batch on a CPU.
    assert ahead <= 2 * 2


def test_weights_three_to_one_give_three_quarters(
    farm: FarmProcesses, farm_env: dict[str, str], tmp_path: Path
) -> None:
    tenants = farm.cli("tenants", "set", "studio", "--weight", "3")
    assert tenants.returncode == 0, tenants.stderr
    listed = farm.cli("tenants", "--json")
    assert {"name": "studio", "weight": 3.0, "quota": None} in json.loads(listed.stdout)

    share, n1, n2, _ = _render_two(farm, farm_env, tmp_path, ["--tenant", "studio"], ["--tenant", "team"])

    assert n1 >= 10 and n2 >= 3, "the books hardly overlapped"
    assert 0.65 <= share <= 0.85


def test_a_replica_that_lost_the_lease_pushes_nothing(redis_url: str, tmp_path: Path, s3_env: dict[str, str]) -> None:
    settings = load_settings(redis_url=redis_url, lease_ttl_s=0.5, dispatch_window=3)
    storage = _storage(s3_env)
    ledger = Ledger(redis.Redis.from_url(redis_url))
    voice = VoiceRegistry().resolve(settings.voice)
    plan = plan_book(
        load_book(numbered_book(tmp_path, "Fenced", 30)),
        PlanOptions("piper-onnx", voice, default_params(voice), BucketPolicy.from_edges(settings.bucket_edges)),
    )
    app = create_app(settings)
    submit_plan(plan, storage=storage, ledger=ledger, app=app)
    a = Dispatcher(storage=storage, ledger=ledger, app=app, settings=settings, holder="replica-a")
    b = Dispatcher(storage=storage, ledger=ledger, app=app, settings=settings, holder="replica-b")

    def queued() -> int:
        return sum(int(ledger.redis.llen(q)) for q in ledger.redis.scan_iter(match="voxfarm.piper-onnx.*"))

    first = a.cycle()
    assert first.held and first.dispatched > 0 and not b.cycle().held
    assert queued() == first.dispatched == len(ledger.sent_times(plan.job))
    stale = a.lease.value
    for name in list(ledger.redis.scan_iter(match="voxfarm.piper-onnx.*")):
        ledger.redis.delete(name)  # workers took everything

    time.sleep(0.7)  # a is cut off past its lease
    taken = b.cycle()
    assert taken.held and b.lease.token == a.lease.token + 1
    assert queued() == taken.dispatched > 0
    sent_before = ledger.sent_times(plan.job)
    assert len(sent_before) == first.dispatched + taken.dispatched, "b dispatched again what a had sent"

    a.lease.value = stale  # a still believes it holds the lease
    rooms = {queue: 5 for work in a.jobs.values() for queue, units in work.pending.items() if units}
    outgoing = a._select(rooms)
    assert outgoing and a.pusher.push(stale, outgoing, time.time()) == -1
    assert queued() == taken.dispatched and ledger.sent_times(plan.job) == sent_before
    assert not a.cycle().held


def test_operations_on_unknown_or_finished_jobs_and_bad_priorities_exit_2(
    farm: FarmProcesses, farm_env: dict[str, str], tmp_path: Path
) -> None:
    unknown = farm.cli("pause", "no-such-job")
    assert unknown.returncode == 2 and "no job 'no-such-job'" in unknown.stderr
    assert farm.cli("cancel", "no-such-job").returncode == 2
    assert farm.cli("priority", "no-such-job", "10").returncode == 2
    assert farm.cli("tenants", "set", "Bad Name", "--weight", "2").returncode == 2
    assert farm.cli("tenants", "set", "ok", "--weight", "0").returncode == 2

    farm.control()
    job = _submit(farm, numbered_book(tmp_path, "Waiting", 4), "--priority", "70", "--tenant", "alpha")
    bad = farm.cli("priority", job, "101")
    assert bad.returncode == 2 and "0 to 100" in bad.stderr
    assert farm.cli("submit", str(numbered_book(tmp_path, "Other", 2)), "--priority", "-1").returncode == 2
    moved = farm.cli("priority", job, "20")
    assert moved.returncode == 0, moved.stderr
    status = json.loads(farm.cli("status", job, "--json").stdout)
    assert (status["priority"], status["tenant"]) == (20, "alpha")

    farm.worker("cpu:0")
    assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], job, {"done"}, 240) == "done"
    for args in (("pause", job), ("cancel", job), ("priority", job, "10")):
        finished = farm.cli(*args)
        assert finished.returncode == 2 and "done" in finished.stderr, args


def test_work_units_carry_several_segments_per_message_and_render_the_book(
    farm: FarmProcesses, farm_env: dict[str, str], tmp_path: Path
) -> None:
    farm.worker("cpu:0")
    control = farm.control(
        extra_env={"VOXFARM_DISPATCH_UNIT_SEGMENTS": "4", "VOXFARM_LOG_LEVEL": "DEBUG", "VOXFARM_LOG_FORMAT": "json"}
    )
    job = _submit(farm, numbered_book(tmp_path, "Units", 16))

    assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], job, {"done"}, 300) == "done"
    storage = _storage(farm_env)
    plan = JobPlan.model_validate_json(storage.get_bytes(plan_path(job)))
    assert all(storage.exists(segment_path(plan.voice, s.key)) for s in plan.segments)
    from tests.support.logs import records

    messages = [r for r in records(control.log()) if r.get("msg") == "segment enqueued" and r.get("job") == job]
    distinct = len({s.key for s in plan.segments})
    assert len(messages) <= distinct // 4 + len({s.bucket for s in plan.segments}) < distinct


def test_a_tenant_quota_bounds_its_work_in_flight_and_its_book_still_completes(
    farm: FarmProcesses, farm_env: dict[str, str], tmp_path: Path
) -> None:
    """In flight is what was sent and is not done: the dispatcher must see units land to dispatch more."""
    quota, per_unit = 4, 2
    assert farm.cli("tenants", "set", "small", "--quota", str(quota)).returncode == 0
    farm.worker("cpu:0")
    farm.worker("cpu:1")
    farm.control(extra_env={"VOXFARM_DISPATCH_UNIT_SEGMENTS": str(per_unit)})
    url = farm_env["VOXFARM_REDIS_URL"]
    ledger = Ledger(redis.Redis.from_url(url))
    job = _submit(farm, numbered_book(tmp_path, "Quota Book", 24), "--tenant", "small")

    most = 0
    deadline = time.monotonic() + 300
    while ledger.status(job).state != "done" and time.monotonic() < deadline:
        sent, done = set(ledger.sent_times(job)), ledger.done_indexes(job)
        most = max(most, len(sent - done))
        time.sleep(0.05)

    assert ledger.status(job).state == "done"
    # The dispatcher stops at the quota; a unit it hands out then may carry it past by less than a unit.
    assert 0 < most <= quota + per_unit - 1
