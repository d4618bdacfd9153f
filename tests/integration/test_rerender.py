"""Edit and re-render: re-submitting a changed book synthesises only the segments whose text changed.

Unchanged segments are reused from storage by their content keys, so their audio is the very same
samples, and the chapters made only of them come out byte-identical, while the default voice draws
fresh noise for anything it renders again.
"""

from __future__ import annotations

import json
from pathlib import Path

from shared.keys import plan_path
from shared.schema import JobPlan
from shared.storage import Storage, open_storage
from tests.support.books import KEEPERS_EDITION_ONE, KEEPERS_EDITION_TWO, write_book
from tests.support.processes import FarmProcesses, wait_for_state


def _storage(env: dict[str, str]) -> Storage:
    return open_storage(env["VOXFARM_STORAGE_URL"], endpoint_url=env["VOXFARM_S3_ENDPOINT_URL"])


def _render(farm: FarmProcesses, env: dict[str, str], book: Path, out: Path, *extra: str) -> dict[str, object]:
    """Submit, wait until the job is done, download it; the submit result."""
    submitted = farm.cli("submit", str(book), "--json", "--book-format", "none", *extra)
    assert submitted.returncode == 0, submitted.stderr
    result: dict[str, object] = json.loads(submitted.stdout)
    job = str(result["job"])
    assert wait_for_state(env["VOXFARM_REDIS_URL"], job, {"done", "failed"}, 120) == "done"
    downloaded = farm.cli("download", job, "-o", str(out))
    assert downloaded.returncode == 0, downloaded.stderr
    return result


def _chapter_bytes(out: Path) -> list[bytes]:
    manifest = json.loads((out / "manifest.json").read_text())
    return [(out / chapter["file"]).read_bytes() for chapter in manifest["chapters"]]


def _plan(env: dict[str, str], job: str) -> JobPlan:
    return JobPlan.model_validate_json(_storage(env).get_bytes(plan_path(job)))


def test_editing_one_sentence_re_renders_that_segment_only_and_changes_only_its_chapter(
    farm: FarmProcesses, farm_env: dict[str, str], tmp_path: Path
) -> None:
    farm.worker("cpu:0")
    farm.worker("cpu:1")
    farm.control()
    book = write_book(tmp_path, KEEPERS_EDITION_ONE, "keepers.md")
    first = _render(farm, farm_env, book, tmp_path / "first", "--job", "keepers")
    before = _plan(farm_env, "keepers")
    assert first["enqueued"] == before.segments_total

    write_book(tmp_path, KEEPERS_EDITION_TWO, "keepers.md")
    second = _render(farm, farm_env, book, tmp_path / "second", "--job", "keepers")

    after = _plan(farm_env, "keepers")
    changed = {s.key for s in after.segments} - {s.key for s in before.segments}
    assert [s.text for s in after.segments if s.key in changed] == ["Hail rattled on the glass until the small hours."]
    assert second["enqueued"] == 1
    assert second["reused"] == after.segments_total - 1
    status = json.loads(farm.cli("status", "keepers", "--json").stdout)
    assert status["segments_rendered"] == 1 and status["segments_reused"] == after.segments_total - 1
    manifest = json.loads((tmp_path / "second" / "manifest.json").read_text())
    assert manifest["segments_reused"] == after.segments_total - 1
    assert f"{after.segments_total - 1} reused, 1 rendered" in farm.cli("status", "keepers").stdout
    old, new = _chapter_bytes(tmp_path / "first"), _chapter_bytes(tmp_path / "second")
    assert new[0] == old[0] and new[2] == old[2], "chapters without the edit are byte-identical"
    assert new[1] != old[1], "the edited chapter is rendered again"


def test_a_lexicon_entry_re_renders_only_the_segments_that_contain_the_word(
    farm: FarmProcesses, farm_env: dict[str, str], tmp_path: Path
) -> None:
    farm.worker("cpu:0")
    farm.control()
    book = write_book(tmp_path, KEEPERS_EDITION_ONE, "keepers.md")
    first = _render(farm, farm_env, book, tmp_path / "first")
    lexicon = tmp_path / "lexicon.tsv"
    lexicon.write_text("# the keeper's pronunciation\nlantern\tlan-tun\n", encoding="utf-8")

    second = _render(farm, farm_env, book, tmp_path / "second", "--lexicon", str(lexicon))

    plan = _plan(farm_env, str(second["job"]))
    with_word = [s for s in plan.segments if "lan-tun" in s.text]
    assert len(with_word) == 2
    assert second["job"] != first["job"]
    assert second["enqueued"] == 2 and second["reused"] == plan.segments_total - 2
    old, new = _chapter_bytes(tmp_path / "first"), _chapter_bytes(tmp_path / "second")
    assert new[1] == old[1], "the chapter without the word is byte-identical"
    assert new[0] != old[0] and new[2] != old[2]
