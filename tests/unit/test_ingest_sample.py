"""The shipped sample book: reads through the EPUB path, small enough to render in about a minute, rebuildable."""

from __future__ import annotations

from pathlib import Path

from producer.ingest import load_book
from producer.samples import SAMPLE_BOOK
from producer.samples.make_sample import build


def test_sample_is_two_short_chapters_with_metadata_and_a_cover() -> None:
    book = load_book(SAMPLE_BOOK)
    assert (book.title, book.author, book.language, book.source_format) == (
        "The Time Machine (two-chapter sample)",
        "H. G. Wells",
        "en-GB",
        "epub",
    )
    assert [c.title for c in book.chapters] == ["X", "Epilogue"]
    words = sum(len(p.split()) for c in book.chapters for p in c.paragraphs)
    assert 1000 < words <= 1800
    assert book.cover is not None and book.cover.startswith(b"\x89PNG") and book.cover_type == "image/png"


def test_sample_carries_its_public_domain_notice_without_reading_it() -> None:
    spoken = " ".join(p for c in load_book(SAMPLE_BOOK).chapters for p in c.paragraphs)
    assert "public domain" not in spoken and "Standard Ebooks" not in spoken
    with_matter = load_book(SAMPLE_BOOK, include_matter=True)
    assert [c.title for c in with_matter.chapters] == ["Titlepage", "Imprint", "X", "Epilogue", "Uncopyright"]
    assert "CC0 1.0 Universal" in " ".join(with_matter.chapters[-1].paragraphs)


def test_sample_is_rebuilt_byte_for_byte_from_the_corpus(tmp_path: Path) -> None:
    rebuilt = build(output=tmp_path / "sample.epub")
    assert rebuilt.read_bytes() == SAMPLE_BOOK.read_bytes()
