"""Every error voxfarm raises sits under one of the three branches, so the CLI and the workers know what to do."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from producer.audiobook.ffmpeg import EncoderError, run_ffmpeg
from shared.errors import BadInputError, FatalError, RetryableError

ROOT = Path(__file__).resolve().parents[2]
BRANCHES = {"BadInputError", "RetryableError", "FatalError"}


def _direct_subclasses_of_the_root() -> list[str]:
    found = []
    for package in ("shared", "producer", "workers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef) and any(
                    isinstance(base, ast.Name) and base.id == "VoxfarmError" for base in node.bases
                ):
                    found.append(f"{path.relative_to(ROOT)}:{node.name}")
    return found


def test_only_the_three_branches_derive_from_the_root() -> None:
    found = _direct_subclasses_of_the_root()

    assert sorted(found) == sorted(f"shared/errors.py:{branch}" for branch in BRANCHES)


def test_an_encoder_refusing_its_input_is_bad_input_and_exits_2(tmp_path: Path) -> None:
    garbage = tmp_path / "chapter.flac"
    garbage.write_bytes(b"not audio at all")

    with pytest.raises(EncoderError) as caught:
        run_ffmpeg(["-i", str(garbage), "-f", "null", "-"], what="decoding a chapter", timeout_s=60)

    assert isinstance(caught.value, BadInputError)
    assert not isinstance(caught.value, RetryableError | FatalError)
    assert caught.value.exit_code == 2
    assert "decoding a chapter: ffmpeg exited with" in str(caught.value)
