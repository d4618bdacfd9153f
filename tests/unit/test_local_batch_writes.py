"""Local storage writes a batch with one filesystem flush: nothing appears before its data is on disk."""

from __future__ import annotations

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

    assert len(seen) == 1, "one flush for the whole batch"
    assert all(name.startswith(".tmp-") for name in seen[0]) and len(seen[0]) == 3
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
