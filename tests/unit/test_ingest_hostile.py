"""Hostile and broken input: every case ends in a clear BadInputError (or a documented normalisation).

The fixtures (zip bombs, traversal entries, XXE payloads, binary files) are built in tmp_path at test time.
"""

from __future__ import annotations

import random
import warnings
import zipfile
from pathlib import Path

import pytest

from producer.ingest import load_book, load_utterances
from shared.errors import BadInputError, EmptyInputError, NotFoundError, UnsupportedFormatError

CONTAINER = (
    '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
    '<rootfiles><rootfile full-path="content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>'
)
OPF = (
    '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
    '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>T</dc:title></metadata>'
    '<manifest><item id="a" href="{href}" media-type="application/xhtml+xml"/></manifest>'
    '<spine><itemref idref="a"/></spine></package>'
)
PAGE = '<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><body><p>Hello there.</p></body></html>'


def epub(path: Path, extra: dict[str, bytes | str] | None = None, href: str = "a.xhtml") -> Path:
    files: dict[str, bytes | str] = {
        "META-INF/container.xml": CONTAINER,
        "content.opf": OPF.format(href=href),
        "a.xhtml": PAGE,
        **(extra or {}),
    }
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def test_a_well_formed_minimal_epub_reads(tmp_path: Path) -> None:
    book = load_book(epub(tmp_path / "ok.epub"))
    assert book.chapters[0].paragraphs == ["Hello there."]


def test_zip_bomb_entry_is_refused_by_its_compression_ratio(tmp_path: Path) -> None:
    path = epub(tmp_path / "bomb.epub", {"a-bomb.xhtml": b"\0" * (20 * 1024 * 1024)})
    assert path.stat().st_size < 100_000
    with pytest.raises(BadInputError, match="zip bomb"):
        load_book(path)


def test_archive_expanding_past_the_limit_is_refused(tmp_path: Path) -> None:
    path = epub(tmp_path / "big.epub", {"filler.txt": "".join(random.Random(0).choices("ab", k=3 * 1024 * 1024))})
    with pytest.raises(BadInputError, match="expands to"):
        load_book(path, max_bytes=1024 * 1024)


def test_too_many_entries_are_refused(tmp_path: Path) -> None:
    path = epub(tmp_path / "many.epub", {f"f{n}.txt": "" for n in range(10_001)})
    with pytest.raises(BadInputError, match="archive entries"):
        load_book(path)


@pytest.mark.parametrize("name", ["../../evil.xhtml", "/etc/evil.xhtml", "a/../../evil.xhtml", "C:/evil.xhtml"])
def test_path_traversal_entries_are_refused(tmp_path: Path, name: str) -> None:
    path = epub(tmp_path / "traversal.epub", {name: PAGE})
    with pytest.raises(BadInputError, match="unsafe entry name"):
        load_book(path)


def test_duplicate_entry_names_are_refused(tmp_path: Path) -> None:
    path = epub(tmp_path / "dup.epub")
    with warnings.catch_warnings(), zipfile.ZipFile(path, "a") as archive:
        warnings.simplefilter("ignore")
        archive.writestr("a.xhtml", PAGE.replace("Hello there.", "Something else."))
    with pytest.raises(BadInputError, match="twice"):
        load_book(path)


def test_a_reference_leaving_the_archive_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="outside the archive"):
        load_book(epub(tmp_path / "href.epub", href="../../../etc/passwd"))


def test_external_entity_is_never_resolved(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    page = (
        f'<?xml version="1.0"?><!DOCTYPE html [<!ENTITY xxe SYSTEM "file://{secret}">]>'
        '<html xmlns="http://www.w3.org/1999/xhtml"><body><p>Hello &xxe;</p></body></html>'
    )
    with pytest.raises(BadInputError, match="entities") as caught:
        load_book(epub(tmp_path / "xxe.epub", {"a.xhtml": page}))
    assert "TOP-SECRET" not in str(caught.value)


def test_billion_laughs_in_the_package_document_is_refused(tmp_path: Path) -> None:
    laughs = '<!DOCTYPE p [<!ENTITY a "haha"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    path = epub(tmp_path / "laughs.epub", {"content.opf": laughs + OPF.format(href="a.xhtml").split("?>", 1)[1]})
    with pytest.raises(BadInputError, match="entities"):
        load_book(path)


def test_external_entity_in_an_html_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text('<!DOCTYPE html [<!ENTITY x SYSTEM "file:///etc/passwd">]><html><body><p>&x;</p></body></html>')
    with pytest.raises(BadInputError, match="entities"):
        load_book(path)


def test_damaged_archive_is_a_clear_error(tmp_path: Path) -> None:
    good = epub(tmp_path / "good.epub").read_bytes()
    truncated = tmp_path / "truncated.epub"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(BadInputError, match="damaged"):
        load_book(truncated)
    not_zip = tmp_path / "text.epub"
    not_zip.write_text("just some text")
    with pytest.raises(BadInputError, match="not a valid EPUB"):
        load_book(not_zip)


def test_missing_package_document_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.epub"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/epub+zip")
    with pytest.raises(BadInputError, match="no package document"):
        load_book(path)


def test_drm_encrypted_text_is_refused(tmp_path: Path) -> None:
    encryption = (
        '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
        'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData><enc:CipherData>'
        '<enc:CipherReference URI="a.xhtml"/></enc:CipherData></enc:EncryptedData></encryption>'
    )
    with pytest.raises(BadInputError, match="DRM"):
        load_book(epub(tmp_path / "drm.epub", {"META-INF/encryption.xml": encryption}))


def test_binary_file_named_txt_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "image.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    with pytest.raises(BadInputError, match="binary"):
        load_book(path)


def test_invalid_utf8_names_the_byte_offset(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("Caf\u00e9 au lait.\nNa\u00efve.".encode("latin-1"))
    with pytest.raises(BadInputError, match=r"offset 3 \(line 1, column 4\).*UTF-8"):
        load_book(path)


def test_utf16_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "utf16.txt"
    path.write_bytes("Hello in UTF-16.".encode("utf-16"))
    assert load_book(path).chapters[0].paragraphs == ["Hello in UTF-16."]


@pytest.mark.parametrize("content", ["", "   \n\n\t  \n", "😀 🎉 ★ ♥\n\n* * *\n", "\u200b\u2060\ufeff"])
def test_nothing_speakable_is_empty_input(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(EmptyInputError, match="no speakable text"):
        load_book(path)


def test_unsupported_extension_missing_file_and_folder(tmp_path: Path) -> None:
    pdf = tmp_path / "book.pdf"
    pdf.write_bytes(b"%PDF-1.7")
    with pytest.raises(UnsupportedFormatError, match=r"\.pdf is not a supported format.*\.epub"):
        load_book(pdf)
    with pytest.raises(NotFoundError, match="no such file"):
        load_book(tmp_path / "missing.epub")
    with pytest.raises(BadInputError, match="is a folder"):
        load_book(tmp_path)


def test_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    path.write_text("word " * 300_000)
    with pytest.raises(BadInputError, match="over the 1 MiB limit"):
        load_book(path, max_bytes=1024 * 1024)


def test_markup_in_plain_text_is_text_and_cannot_inject_phonemes(tmp_path: Path) -> None:
    path = tmp_path / "inject.txt"
    path.write_text('<speak><break time="10s"/>Hi</speak> [[ h ə l oʊ ]] <script>x()</script>')
    paragraph = load_book(path).chapters[0].paragraphs[0]
    assert paragraph == '<speak><break time="10s"/>Hi</speak> [[ h ə l oʊ ]] <script>x()</script>'
    from shared.frontend.normalize import normalize

    assert "[[" not in normalize(paragraph) and "]]" not in normalize(paragraph)


def test_mixed_scripts_and_right_to_left_text_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "mixed.txt"
    path.write_text("He said \u202bשלום\u202c and مرحبا to Привет.", encoding="utf-8")
    assert load_book(path).chapters[0].paragraphs == ["He said שלום and مرحبا to Привет."]


def test_bad_jsonl_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    path.write_text('{"id": "a", "text": "Fine."}\n{"id": "b", "text": \n')
    with pytest.raises(BadInputError, match="line 2: not valid JSON"):
        load_utterances(path)
