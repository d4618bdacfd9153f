"""A render that fails says that running the same command again reuses what is stored, and how much."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from producer.ingest import load_book
from producer.planner import PlanOptions, default_params, plan_book
from producer.progress import rerun_hint
from shared.buckets import BucketPolicy
from shared.keys import segment_path
from shared.schema import JobPlan
from shared.settings import load_settings
from shared.storage import Storage, open_storage
from shared.voices import VoiceRegistry, bundled_voice
from tests.support.books import write_book
from tests.support.broken_voice import write_broken_voice

VOICE = "en_US-drill-medium"


def plan_for(book: Path, voices_dir: Path | None = None, voice_id: str | None = None) -> JobPlan:
    """The plan `voxfarm render BOOK` makes with default settings (the same content keys)."""
    settings = load_settings()
    voice = VoiceRegistry(voices_dir).resolve(voice_id) if voice_id else bundled_voice()
    options = PlanOptions(
        settings.submit_engine, voice, default_params(voice), BucketPolicy.from_edges(settings.bucket_edges)
    )
    return plan_book(load_book(book), options)


def store_first_chapter(storage: Storage, plan: JobPlan) -> int:
    """Audio objects for the first chapter's segments, as an earlier run would have left them."""
    first = plan.chapters[0].segments
    for segment in first:
        storage.put_bytes(segment_path(plan.voice, segment.key), b"stored by an earlier run")
    return len(first)


def test_the_rerun_hint_counts_the_segments_of_the_job_already_in_storage(tmp_path: Path) -> None:
    storage = open_storage((tmp_path / "store").as_uri())
    plan = plan_for(write_book(tmp_path))
    assert rerun_hint(storage, plan).startswith(f"0 of {plan.segments_total} segments are stored")

    stored = store_first_chapter(storage, plan)

    assert 0 < stored < plan.segments_total
    assert rerun_hint(storage, plan) == (
        f"{stored} of {plan.segments_total} segments are stored; rerunning the same command reuses them "
        f"and renders only the other {plan.segments_total - stored}"
    )


def test_a_failed_embedded_render_says_what_a_rerun_reuses(tmp_path: Path) -> None:
    # Every worker of the embedded farm runs a voice that loads and warms up but fails on every real
    # sentence: the workers keep dying and the render fails, after the first chapter was stored.
    voices = write_broken_voice(tmp_path / "voices", VOICE)
    book = write_book(tmp_path)
    store = (tmp_path / "store").as_uri()
    plan = plan_for(book, voices, VOICE)
    stored = store_first_chapter(open_storage(store), plan)
    env = {
        **{k: v for k, v in os.environ.items() if k != "VOXFARM_REDIS_URL"},
        "VOXFARM_STORAGE_URL": store,
        "VOXFARM_VOICES_DIR": str(voices),
        "VOXFARM_CACHE_DIR": str(tmp_path / "cache"),
    }

    render = ["render", str(book), "-o", str(tmp_path / "out"), "--voice", VOICE, "--workers", "1"]
    result = subprocess.run(
        [sys.executable, "-m", "producer.cli", *render],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )

    assert result.returncode in (1, 70), result.stderr[-3000:]
    assert (
        f"{stored} of {plan.segments_total} segments are stored; rerunning the same command reuses them "
        f"and renders only the other {plan.segments_total - stored}"
    ) in result.stderr, result.stderr[-3000:]
    assert not (tmp_path / "out").exists()
