"""Bad input and unreachable services give one clear line and an exit code, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.books import write_book
from tests.support.services import free_port_pair


def voxfarm(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "producer.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], code: int, *phrases: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("voxfarm: error: "), result.stderr
    for phrase in phrases:
        assert phrase.lower() in result.stderr.lower(), result.stderr


def test_missing_file(tmp_path: Path) -> None:
    assert_clean_failure(voxfarm("plan", str(tmp_path / "nope.epub")), 2, "nope.epub")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("")
    assert_clean_failure(voxfarm("plan", str(path)), 2, "empty")


def test_whitespace_only_file(tmp_path: Path) -> None:
    path = tmp_path / "blank.md"
    path.write_text(" \n\t\n   \n")
    assert_clean_failure(voxfarm("plan", str(path)), 2)


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "photo.txt"
    path.write_bytes(bytes(range(256)) * 64)
    assert_clean_failure(voxfarm("plan", str(path)), 2, "binary")


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "book.docx"
    path.write_text("hello")
    assert_clean_failure(voxfarm("plan", str(path)), 2, ".docx")


def test_unknown_voice(tmp_path: Path) -> None:
    assert_clean_failure(
        voxfarm("plan", str(write_book(tmp_path)), "--voice", "xx_XX-nobody-low"),
        2,
        "unknown voice",
        "en_US-joe-medium",
    )


@pytest.mark.parametrize("voice", ["../../etc/passwd", "a;rm -rf /", "$(id)"])
def test_hostile_voice_ids(tmp_path: Path, voice: str) -> None:
    assert_clean_failure(voxfarm("plan", str(write_book(tmp_path)), "--voice", voice), 2, "invalid voice id")


def test_unknown_engine(tmp_path: Path) -> None:
    assert_clean_failure(voxfarm("plan", str(write_book(tmp_path)), "--engine", "warp-drive"), 2, "unknown engine")


def test_unreachable_redis(tmp_path: Path) -> None:
    env = {
        "VOXFARM_REDIS_URL": f"redis://127.0.0.1:{free_port_pair()}/0",
        "VOXFARM_STORAGE_URL": (tmp_path / "store").as_uri(),
    }
    assert_clean_failure(voxfarm("submit", str(write_book(tmp_path)), env=env), 3, "redis")


def test_unreachable_s3(tmp_path: Path, redis_url: str) -> None:
    env = {
        "VOXFARM_REDIS_URL": redis_url,
        "VOXFARM_STORAGE_URL": "s3://books/farm",
        "VOXFARM_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port_pair()}",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
    }
    assert_clean_failure(voxfarm("submit", str(write_book(tmp_path)), env=env), 3, "s3", "endpoint")


def test_status_of_an_unknown_job(redis_url: str) -> None:
    assert_clean_failure(voxfarm("status", "no-such-job", env={"VOXFARM_REDIS_URL": redis_url}), 2, "no-such-job")


def test_hostile_job_name(tmp_path: Path, redis_url: str) -> None:
    env = {"VOXFARM_REDIS_URL": redis_url, "VOXFARM_STORAGE_URL": (tmp_path / "store").as_uri()}
    assert_clean_failure(voxfarm("submit", str(write_book(tmp_path)), "--job", "../../x", env=env), 2, "invalid job id")
    assert not (tmp_path / "x").exists()


def test_a_50_mb_text_is_refused_quickly_with_a_way_forward(tmp_path: Path) -> None:
    path = tmp_path / "enormous.txt"
    sentence = "The rain fell on the long road, and the travellers walked on without a word. "
    with path.open("w") as handle:
        for _ in range(50 * 1024 * 1024 // len(sentence)):
            handle.write(sentence)
    assert path.stat().st_size > 49 * 1024 * 1024
    assert_clean_failure(voxfarm("plan", str(path), timeout=120), 2, "characters of text", "--chapters")
