"""Running ffmpeg: the binary that ships in the ``imageio-ffmpeg`` wheel, so no system package is needed.

That build has the encoders assembly uses (libmp3lame, libopus, the native
AAC encoder), the MP4 muxer with chapters and attached pictures, and the
librsvg decoder that rasterises SVG covers. Arguments are passed as a list,
never through a shell, so titles and paths cannot inject anything.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

from shared.errors import BadInputError, FatalError

log = logging.getLogger(__name__)

TIMEOUT_S = 3600.0
"""An M4B of a long book takes minutes; anything past an hour is stuck."""


class EncoderError(BadInputError):
    """ffmpeg refused an input or failed; the message carries the end of its log.

    Bad input: the same audio or cover fails the same way however often it
    is tried. A missing ffmpeg binary is a broken installation instead
    (``FatalError``).
    """


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError) as exc:
        raise FatalError(f"no ffmpeg binary: {exc}; reinstall voxfarm (it depends on imageio-ffmpeg)") from exc


def run_ffmpeg(args: Sequence[str], *, what: str, timeout_s: float = TIMEOUT_S, stdin: bytes | None = None) -> bytes:
    """Run ffmpeg quietly; its stdout on success, an EncoderError with its last log lines on failure."""
    command = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", *(["-nostdin"] if stdin is None else []), *args]
    try:
        done = subprocess.run(command, input=stdin, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise EncoderError(f"{what}: ffmpeg did not finish within {timeout_s:.0f}s") from exc
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-5:]
        raise EncoderError(f"{what}: ffmpeg exited with {done.returncode}: {' | '.join(tail) or 'no message'}")
    return done.stdout


CODECS: Mapping[str, tuple[str, ...]] = {
    # Opus runs at 48/24/16/12/8 kHz: 24 kHz keeps all of a 22.05 kHz voice.
    "mp3": ("-c:a", "libmp3lame", "-f", "mp3"),
    "opus": ("-c:a", "libopus", "-ar", "24000", "-application", "voip", "-f", "opus"),
}


def encode_lossy(source: Path, target: Path, codec: str, *, bitrate_kbps: int, tags: Mapping[str, str | None]) -> None:
    """Encode one lossless chapter file into MP3 or Opus, with its tags."""
    if codec not in CODECS:
        raise ValueError(f"unknown lossy codec {codec!r}")
    metadata: list[str] = []
    for key, value in tags.items():
        if value:
            metadata += ["-metadata", f"{key}={' '.join(value.split())}"]
    args = ["-y", "-i", str(source), "-map", "0:a", "-ac", "1", "-b:a", f"{bitrate_kbps}k", *metadata]
    run_ffmpeg([*args, *CODECS[codec], str(target)], what=f"encoding {target.name}")
