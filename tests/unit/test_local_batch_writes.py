"""Local storage writes a batch with two filesystem flushes: nothing appears before its data is on disk, and
the names are on disk when the call returns."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from shared.errors import StorageError
from shared.storage import local
from shared.storage.local import LocalStorage


def test_every_file_of_a_batch_is_flushed_before_any_is_renamed_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalStorage(tmp_path / "store")
    seen: list[list[str]] = []

    def syncfs(fd: int) -> int:
        seen.append(sorted(p.name for p in (tmp_path / "store").rglob("*") if p.is_file()))
        return 0

    monkeypatch.setattr(local, "_SYNCFS", syncfs)
    storage.put_many([("a/one.flac", b"1"), ("b/two.flac", b"22"), ("a/three.flac", b"333")])

    assert len(seen) == 2, "one flush for the data of the whole batch, one for its names"
    assert all(name.startswith(".tmp-") for name in seen[0]) and len(seen[0]) == 3
    assert seen[1] == ["one.flac", "three.flac", "two.flac"], "the second flush comes after the renames"
    assert storage.get_bytes("b/two.flac") == b"22"
    assert sorted(p.name for p in (tmp_path / "store").rglob("*") if p.is_file()) == [
        "one.flac",
        "three.flac",
        "two.flac",
    ]


def test_a_failed_flush_stores_nothing_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = LocalStorage(tmp_path / "store")
    monkeypatch.setattr(local, "_SYNCFS", lambda fd: -1)
    with pytest.raises(StorageError, match="cannot write"):
        storage.put_many([("a/one.flac", b"1"), ("a/two.flac", b"2")])
    assert not [p for p in (tmp_path / "store").rglob("*") if p.is_file()]


def test_the_real_flush_is_found_on_linux() -> None:
    assert local._SYNCFS is not None


def test_files_written_at_once_to_one_path_leave_one_of_them_whole(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    sources = []
    for n, size in enumerate((3_000_000, 2_000_000)):
        source = tmp_path / f"chapter-{n}.flac"
        source.write_bytes(bytes([n + 1]) * size)
        sources.append(source)
    errors: list[BaseException] = []

    def write(source: Path) -> None:
        try:
            storage.put_file("jobs/j/001.flac", source)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    for _ in range(10):
        writers = [threading.Thread(target=write, args=(source,)) for source in sources]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        stored = storage.get_bytes("jobs/j/001.flac")
        assert stored in (sources[0].read_bytes(), sources[1].read_bytes()), "never a mix of the two"
    assert errors == [], "neither writer fails because the other took its temporary file"
    assert [p.name for p in (tmp_path / "store" / "jobs" / "j").iterdir()] == ["001.flac"], "no temporary left"
