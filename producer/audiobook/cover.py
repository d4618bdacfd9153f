"""The book's cover as a picture an M4B can carry: JPEG or PNG.

Covers arrive as the book has them. JPEG and PNG are used as they are
(recognised by their bytes, whatever the declared type). SVG, which
Standard Ebooks and many EPUB 3 books use, is rasterised by ffmpeg's
librsvg decoder at the size its view box asks for (longest side 1600 px),
from a private temporary folder so it cannot reach files beside it; GIF, WebP and BMP are
converted. A cover that cannot be read is left out, with a note for the
manifest, rather than failing the book.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from producer.audiobook.ffmpeg import EncoderError, run_ffmpeg

LONGEST_SIDE = 1600
COVER_TIMEOUT_S = 60.0
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)"


@dataclass(frozen=True)
class Cover:
    data: bytes
    extension: str
    """jpg or png."""

    @property
    def mime(self) -> str:
        return "image/png" if self.extension == "png" else "image/jpeg"


def sniff(data: bytes) -> str | None:
    """The picture format from the bytes themselves: png, jpg, gif, webp, bmp, svg, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"BM"):
        return "bmp"
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<?xml", b"<svg", b"<!--", b"<!doctype svg")) and b"<svg" in head:
        return "svg"
    return None


def svg_size(data: bytes, longest: int = LONGEST_SIDE) -> tuple[int, int]:
    """Pixel size to render an SVG at: its view box (or width/height) scaled so the longest side is ``longest``."""
    head = data[:65536].decode("utf-8", "replace")
    tag = re.search(r"<svg\b[^>]*>", head, re.S)
    width = height = 0.0
    if tag:
        box = re.search(rf"viewBox\s*=\s*[\"']\s*{_NUMBER}[\s,]+{_NUMBER}[\s,]+({_NUMBER})[\s,]+({_NUMBER})", tag[0])
        if box:
            width, height = float(box[1]), float(box[2])
        else:
            w = re.search(rf"\bwidth\s*=\s*[\"']\s*({_NUMBER})", tag[0])
            h = re.search(rf"\bheight\s*=\s*[\"']\s*({_NUMBER})", tag[0])
            if w and h:
                width, height = float(w[1]), float(h[1])
    if width <= 0 or height <= 0:
        width, height = 2.0, 3.0  # the usual book cover shape
    scale = longest / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _to_jpeg(data: bytes, input_args: list[str]) -> bytes:
    fit = (
        f"scale='min({LONGEST_SIDE},iw)':'min({LONGEST_SIDE},ih)':force_original_aspect_ratio=decrease"
        ":force_divisible_by=2,format=yuvj420p"
    )
    with tempfile.TemporaryDirectory(prefix="voxfarm-cover-") as folder:
        source = Path(folder) / "cover"
        source.write_bytes(data)
        return run_ffmpeg(
            [
                *input_args,
                "-i",
                str(source),
                "-frames:v",
                "1",
                "-vf",
                fit,
                "-c:v",
                "mjpeg",
                "-q:v",
                "3",
                "-f",
                "image2pipe",
                "pipe:1",
            ],
            what="converting the cover",
            timeout_s=COVER_TIMEOUT_S,
        )


def prepare_cover(data: bytes) -> tuple[Cover | None, str | None]:
    """The cover to embed, or None and the reason it was left out."""
    kind = sniff(data)
    if kind in ("png", "jpg"):
        return Cover(data, kind), None
    if kind is None:
        return None, "cover not embedded: not a picture format voxfarm recognises (use JPEG or PNG)"
    try:
        if kind == "svg":
            width, height = svg_size(data)
            converted = _to_jpeg(data, ["-width", str(width), "-height", str(height), "-f", "svg_pipe"])
        else:
            converted = _to_jpeg(data, [])
    except EncoderError as exc:
        return None, f"cover not embedded: the {kind.upper()} cover could not be converted ({exc})"
    if sniff(converted) != "jpg":
        return None, f"cover not embedded: converting the {kind.upper()} cover gave no picture"
    return Cover(converted, "jpg"), None
