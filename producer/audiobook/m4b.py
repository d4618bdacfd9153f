"""The whole book as one M4B: AAC audio, a chapter mark per chapter, cover, title/author/language tags.

ffmpeg concatenates the (already levelled) chapter files and encodes them
once, with the AAC encoder's fast coder (four times the speed of its
default on speech, and no further from the lossless chapters: see
docs/audiobook.md); the chapter marks and the book tags come from an ffmetadata file, so
they are exact and no title ever passes through a command line; the cover
is attached as a picture stream (``covr``). mutagen then adds what ffmpeg's
MP4 writer has no name for: the iTunes media kind "Audiobook" (``stik`` 2)
and the book's language as a ``----:com.apple.iTunes:LANGUAGE`` tag (the
audio track also carries it as its ISO 639-2 code).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mutagen.mp4 import MP4, MP4FreeForm

from producer.audiobook import ffmetadata
from producer.audiobook.cover import Cover
from producer.audiobook.ffmpeg import run_ffmpeg

AUDIOBOOK_MEDIA_KIND = 2
LANGUAGE_TAG = "----:com.apple.iTunes:LANGUAGE"

#: ISO 639-1 -> ISO 639-2/T, for the languages books are most often read in.
_ISO639_2 = {
    "ar": "ara",
    "bg": "bul",
    "ca": "cat",
    "cs": "ces",
    "cy": "cym",
    "da": "dan",
    "de": "deu",
    "el": "ell",
    "en": "eng",
    "eo": "epo",
    "es": "spa",
    "et": "est",
    "eu": "eus",
    "fa": "fas",
    "fi": "fin",
    "fr": "fra",
    "ga": "gle",
    "gl": "glg",
    "he": "heb",
    "hi": "hin",
    "hr": "hrv",
    "hu": "hun",
    "id": "ind",
    "is": "isl",
    "it": "ita",
    "ja": "jpn",
    "ka": "kat",
    "kk": "kaz",
    "ko": "kor",
    "la": "lat",
    "lt": "lit",
    "lv": "lav",
    "nb": "nob",
    "nl": "nld",
    "nn": "nno",
    "no": "nor",
    "pl": "pol",
    "pt": "por",
    "ro": "ron",
    "ru": "rus",
    "sk": "slk",
    "sl": "slv",
    "sr": "srp",
    "sv": "swe",
    "sw": "swa",
    "th": "tha",
    "tr": "tur",
    "uk": "ukr",
    "ur": "urd",
    "vi": "vie",
    "zh": "zho",
}


def iso639_2(language: str | None) -> str:
    """'en-GB' -> 'eng'; 'und' (undetermined) when the language is missing or unknown."""
    if not language:
        return "und"
    primary = language.replace("_", "-").split("-")[0].lower()
    if len(primary) == 3 and primary.isalpha():
        return primary
    return _ISO639_2.get(primary, "und")


@dataclass(frozen=True)
class BookInfo:
    title: str
    author: str | None
    language: str | None
    narrator: str | None = None


def _concat_list(files: Sequence[Path]) -> str:
    lines = ["ffconcat version 1.0"]
    for path in files:
        quoted = str(path.resolve()).replace("'", "'\\''")
        lines.append(f"file '{quoted}'")
    return "\n".join(lines) + "\n"


def build_m4b(
    chapter_files: Sequence[Path],
    marks: Sequence[ffmetadata.ChapterMark],
    info: BookInfo,
    target: Path,
    *,
    bitrate_kbps: int,
    cover: Cover | None,
    ticks_per_s: int = 1000,
) -> None:
    """Encode the chapter files (lossless, same rate) into one chaptered M4B at ``target``.

    ``marks`` count ``ticks_per_s`` ticks a second (the sample rate: each mark on its sample).
    """
    tags = {
        "title": info.title,
        "album": info.title,
        "artist": info.author,
        "album_artist": info.author,
        "composer": info.narrator,
        "genre": "Audiobook",
    }
    with tempfile.TemporaryDirectory(prefix="voxfarm-m4b-") as folder:
        work = Path(folder)
        listing = work / "chapters.ffconcat"
        listing.write_text(_concat_list(chapter_files), encoding="utf-8")
        metadata = work / "metadata.txt"
        metadata.write_text(ffmetadata.document(tags, marks, ticks_per_s=ticks_per_s), encoding="utf-8")
        inputs = ["-f", "concat", "-safe", "0", "-i", str(listing), "-i", str(metadata)]
        maps = ["-map", "0:a", "-map_metadata", "1", "-map_chapters", "1"]
        if cover is not None:
            picture = work / f"cover.{cover.extension}"
            picture.write_bytes(cover.data)
            inputs += ["-i", str(picture)]
            maps += ["-map", "2:v", "-c:v", "copy", "-disposition:v", "attached_pic"]
        run_ffmpeg(
            [
                "-y",
                *inputs,
                *maps,
                "-c:a",
                "aac",
                "-aac_coder",
                "fast",
                "-b:a",
                f"{bitrate_kbps}k",
                "-ac",
                "1",
                "-metadata:s:a:0",
                f"language={iso639_2(info.language)}",
                "-movflags",
                "+faststart",
                "-f",
                "mp4",
                str(target),
            ],
            what=f"encoding {target.name}",
        )
    book = MP4(str(target))
    if book.tags is None:
        book.add_tags()
    assert book.tags is not None
    book.tags["stik"] = [AUDIOBOOK_MEDIA_KIND]
    if info.language:
        book.tags[LANGUAGE_TAG] = [MP4FreeForm(info.language.encode("utf-8"))]
    book.save()
