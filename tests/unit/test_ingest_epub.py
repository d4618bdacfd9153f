"""EPUB ingestion against the corpus books' own navigation documents, and built EPUB 2/3 variants."""

from __future__ import annotations

import re
import zipfile
from functools import cache
from pathlib import Path

import pytest
from lxml import etree

from producer.ingest import Book, load_book
from shared.errors import BadInputError

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
TIME_MACHINE = CORPUS / "h-g-wells_the-time-machine.epub"
FRANKENSTEIN = CORPUS / "mary-shelley_frankenstein.epub"
SHERLOCK = CORPUS / "arthur-conan-doyle_the-adventures-of-sherlock-holmes.epub"
XHTML = "{http://www.w3.org/1999/xhtml}"
OPS_TYPE = "{http://www.idpf.org/2007/ops}type"
MATTER_LABELS = {"Titlepage", "Imprint", "Endnotes", "Colophon", "Uncopyright"}


@cache
def book(path: Path, include_matter: bool = False) -> Book:
    return load_book(path, include_matter=include_matter)


def nav_chapters(path: Path) -> list[str]:
    """Chapter titles read straight from the book's toc.xhtml: top-level entries, containers expanded."""
    with zipfile.ZipFile(path) as archive:
        root = etree.fromstring(archive.read("epub/toc.xhtml"))
    toc = next(n for n in root.iter(f"{XHTML}nav") if n.get(OPS_TYPE) == "toc")

    def entries(ol: etree._Element) -> list[str]:
        titles: list[str] = []
        for li in ol.findall(f"{XHTML}li"):
            link = li.find(f"{XHTML}a")
            assert link is not None
            label = " ".join("".join(link.itertext()).split())
            file = link.get("href", "").partition("#")[0]
            sub = li.find(f"{XHTML}ol")
            nested_files = (
                {a.get("href", "").partition("#")[0] for a in sub.iter(f"{XHTML}a")} if sub is not None else set()
            )
            if nested_files - {file}:
                titles.extend(entries(sub))  # a container (here the half-title): its children are the chapters
            elif label not in MATTER_LABELS:
                titles.append(label)
        return titles

    ol = toc.find(f"{XHTML}ol")
    assert ol is not None
    return entries(ol)


def all_text(b: Book) -> str:
    return "\n".join(p for c in b.chapters for p in c.paragraphs)


@pytest.mark.parametrize("path", [TIME_MACHINE, FRANKENSTEIN, SHERLOCK], ids=lambda p: p.stem)
def test_chapters_match_the_navigation_document_in_order(path: Path) -> None:
    assert [c.title for c in book(path).chapters] == nav_chapters(path)


def test_time_machine_has_twelve_chapters_and_the_epilogue() -> None:
    titles = [c.title for c in book(TIME_MACHINE).chapters]
    assert titles == ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII", "Epilogue"]


def test_frankenstein_reads_the_authors_front_matter_then_letters_and_chapters() -> None:
    titles = [c.title for c in book(FRANKENSTEIN).chapters]
    assert titles[:8] == [
        "Introduction",
        "Preface",
        "Dedication",
        "Epigraph",
        "Letter I",
        "Letter II",
        "Letter III",
        "Letter IV",
    ]
    numerals = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII", "XIII", "XIV", "XV", "XVI",
                "XVII", "XVIII", "XIX", "XX", "XXI", "XXII", "XXIII", "XXIV"]  # fmt: skip
    assert titles[8:] == [f"Chapter {n}" for n in numerals]


def test_a_subsection_in_the_same_file_stays_inside_its_chapter() -> None:
    last = book(FRANKENSTEIN).chapters[-1]
    assert last.title == "Chapter XXIV"
    assert "Walton, in Continuation" in last.paragraphs
    assert last.paragraphs[0].startswith("My present situation was one in which all voluntary thought")


def test_sherlock_holmes_has_twelve_stories_with_numbered_parts_read_as_parts() -> None:
    chapters = book(SHERLOCK).chapters
    assert len(chapters) == 12
    assert chapters[0].title == "A Scandal in Bohemia"
    assert chapters[8].title == "The Adventure of the Engineer’s Thumb"
    assert chapters[0].paragraphs[0] == "Part I"
    assert "Part II" in chapters[0].paragraphs and "Part III" in chapters[0].paragraphs


def test_chapter_title_heading_is_not_repeated_in_the_paragraphs() -> None:
    first = book(TIME_MACHINE).chapters[0]
    assert first.paragraphs[0].startswith("The Time Traveller (for so it will be convenient to speak of him)")
    letter = book(FRANKENSTEIN).chapters[4]
    assert letter.paragraphs[:2] == ["To Mrs. Saville, England.", "St. Petersburgh, Dec. 11th, 17—."]


@pytest.mark.parametrize("path", [TIME_MACHINE, FRANKENSTEIN, SHERLOCK], ids=lambda p: p.stem)
def test_imprint_colophon_and_licence_text_are_not_read(path: Path) -> None:
    text = all_text(book(path))
    for marker in (
        "Standard Ebooks",
        "Uncopyright",
        "standardebooks.org",
        "CC0",
        "Project Gutenberg",
        "↩",
        "Titlepage",
    ):
        assert marker not in text


def test_noteref_numbers_are_not_read_inline() -> None:
    time_machine = all_text(book(TIME_MACHINE))
    assert "noticed that the floor of the gallery sloped at all. The end I had come in" in time_machine
    frankenstein = all_text(book(FRANKENSTEIN))
    assert "beheld a radiant form rise from among the trees. I gazed" in frankenstein
    assert not re.search(r"[a-z][.,;”’]\d+\b", frankenstein + time_machine)


def test_endnotes_themselves_are_back_matter() -> None:
    assert "Coleridge’s “Ancient Mariner.”" not in all_text(book(FRANKENSTEIN))
    with_matter = book(FRANKENSTEIN, include_matter=True)
    endnotes = next(c for c in with_matter.chapters if c.title == "Endnotes")
    assert endnotes.paragraphs[0].startswith("Coleridge’s “Ancient Mariner.”")


def test_standard_ebooks_word_joiners_are_removed_and_dashes_kept() -> None:
    text = all_text(book(TIME_MACHINE))
    assert "\u2060" not in text and "\u200b" not in text
    assert "this way—marking the points with a lean forefinger—as we sat" in text


def test_include_matter_adds_the_front_and_back_matter_in_spine_order() -> None:
    titles = [c.title for c in book(TIME_MACHINE, include_matter=True).chapters]
    assert titles[:3] == ["Titlepage", "Imprint", "I"]
    assert titles[-4:] == ["Epilogue", "Endnotes", "Colophon", "Uncopyright"]
    assert "Frankenstein" in [c.title for c in book(FRANKENSTEIN, include_matter=True).chapters]


@pytest.mark.parametrize(
    ("path", "title", "author", "language"),
    [
        (TIME_MACHINE, "The Time Machine", "H. G. Wells", "en-GB"),
        (FRANKENSTEIN, "Frankenstein", "Mary Shelley", "en-GB"),
        (SHERLOCK, "The Adventures of Sherlock Holmes", "Arthur Conan Doyle", "en-GB"),
    ],
    ids=["time-machine", "frankenstein", "sherlock"],
)
def test_metadata_and_cover_come_from_the_package_document(path: Path, title: str, author: str, language: str) -> None:
    b = book(path)
    assert (b.title, b.author, b.language, b.source_format) == (title, author, language, "epub")
    with zipfile.ZipFile(path) as archive:
        assert b.cover == archive.read("epub/images/cover.svg")
    assert b.cover_type == "image/svg+xml"


def test_chapter_selection_picks_among_the_chapters_read() -> None:
    picked = load_book(TIME_MACHINE, chapters="1-3,13")
    assert [c.title for c in picked.chapters] == ["I", "II", "III", "Epilogue"]
    assert [c.title for c in load_book(TIME_MACHINE, chapters="12-").chapters] == ["XII", "Epilogue"]
    with pytest.raises(BadInputError, match="13 chapters"):
        load_book(TIME_MACHINE, chapters="14")
    with pytest.raises(BadInputError, match="1-3,5"):
        load_book(TIME_MACHINE, chapters="one")


# --- EPUBs built at test time -------------------------------------------------------------------------


def _write_epub(path: Path, files: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        archive.writestr(
            "META-INF/container.xml",
            '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
            '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
            "</rootfiles></container>",
        )
        for name, data in files.items():
            archive.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
    return path


def _page(body: str, title: str = "t") -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml" '
        f'xmlns:epub="http://www.idpf.org/2007/ops"><head><title>{title}</title></head><body>{body}</body></html>'
    )


def _opf(items: list[str], *, nav: bool = True, ncx: bool = False, version: str = "3.0") -> str:
    manifest = "".join(
        f'<item id="i{n}" href="{name}" media-type="application/xhtml+xml"/>' for n, name in enumerate(items)
    )
    if nav:
        manifest += '<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>'
    if ncx:
        manifest += '<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>'
    spine = "".join(f'<itemref idref="i{n}"/>' for n in range(len(items)))
    toc = ' toc="ncx"' if ncx else ""
    return (
        f'<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="{version}" unique-identifier="u">'
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:opf="http://www.idpf.org/2007/opf">'
        '<dc:identifier id="u">x</dc:identifier><dc:title>Built</dc:title>'
        '<dc:creator opf:role="aut">A. Writer</dc:creator><dc:creator opf:role="ill">An Illustrator</dc:creator>'
        f"<dc:language>en</dc:language></metadata><manifest>{manifest}</manifest><spine{toc}>{spine}</spine></package>"
    )


def _nav(entries: str) -> str:
    return _page(f'<nav epub:type="toc"><ol>{entries}</ol></nav>')


def test_epub2_ncx_gives_the_same_chapters_as_the_epub3_nav(tmp_path: Path) -> None:
    with zipfile.ZipFile(TIME_MACHINE) as source:
        names = [f"text/chapter-{n}.xhtml" for n in (1, 2, 3)] + ["text/colophon.xhtml"]
        files: dict[str, str | bytes] = {f"OEBPS/{n}": source.read(f"epub/{n}") for n in names}
    points = "".join(
        f'<navPoint id="p{i}"><navLabel><text>{label}</text></navLabel><content src="{name}"/></navPoint>'
        for i, (label, name) in enumerate(zip(["I", "II", "III", "Colophon"], names, strict=True))
    )
    files["OEBPS/toc.ncx"] = (
        f'<?xml version="1.0"?><ncx xmlns="http://www.daisy.org/z3986/2005/ncx/"><navMap>{points}</navMap></ncx>'
    )
    files["OEBPS/content.opf"] = _opf(names, nav=False, ncx=True, version="2.0")
    built = load_book(_write_epub(tmp_path / "epub2.epub", files))
    assert [c.title for c in built.chapters] == ["I", "II", "III"]
    assert built.chapters[1].paragraphs == book(TIME_MACHINE).chapters[1].paragraphs
    assert built.author == "A. Writer"


def test_one_file_with_several_chapters_and_one_chapter_across_files(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "OEBPS/a.xhtml": _page(
            '<section id="c1"><h2>One</h2><p>First chapter text.</p></section>'
            '<section id="c2"><h2>Two</h2><p>Second chapter starts.</p></section>'
        ),
        "OEBPS/b.xhtml": _page("<p>Second chapter continues in the next file.</p>"),
        "OEBPS/c.xhtml": _page('<section id="c3"><h2>Three</h2><p>Third.</p></section>'),
        "OEBPS/nav.xhtml": _nav(
            '<li><a href="a.xhtml#c1">One</a></li><li><a href="a.xhtml#c2">Two</a></li>'
            '<li><a href="c.xhtml">Three</a></li>'
        ),
    }
    files["OEBPS/content.opf"] = _opf(["a.xhtml", "b.xhtml", "c.xhtml"])
    built = load_book(_write_epub(tmp_path / "multi.epub", files))
    assert [(c.title, c.paragraphs) for c in built.chapters] == [
        ("One", ["First chapter text."]),
        ("Two", ["Second chapter starts.", "Second chapter continues in the next file."]),
        ("Three", ["Third."]),
    ]


def test_volumes_prefix_the_titles_of_their_chapters(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "OEBPS/v1.xhtml": _page('<section epub:type="part"><h2>Volume I</h2></section>'),
        "OEBPS/c1.xhtml": _page("<h3>Chapter I</h3><p>Alpha.</p>"),
        "OEBPS/v2.xhtml": _page('<section epub:type="part"><h2>Volume II</h2></section>'),
        "OEBPS/c2.xhtml": _page("<h3>Chapter I</h3><p>Beta.</p>"),
        "OEBPS/nav.xhtml": _nav(
            '<li><a href="v1.xhtml">Volume I</a><ol><li><a href="c1.xhtml">Chapter I</a></li></ol></li>'
            '<li><a href="v2.xhtml">Volume II</a><ol><li><a href="c2.xhtml">Chapter I</a></li></ol></li>'
        ),
    }
    files["OEBPS/content.opf"] = _opf(["v1.xhtml", "c1.xhtml", "v2.xhtml", "c2.xhtml"])
    built = load_book(_write_epub(tmp_path / "volumes.epub", files))
    assert [(c.title, c.paragraphs) for c in built.chapters] == [
        ("Volume I: Chapter I", ["Alpha."]),
        ("Volume II: Chapter I", ["Beta."]),
    ]


def test_without_a_table_of_contents_chapters_come_from_files_and_headings(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "OEBPS/cover.xhtml": _page("<p>Cover Title</p>"),
        "OEBPS/all.xhtml": _page(
            "<h1>The Book</h1><h2>Start</h2><p>Begin.</p><h2>Middle</h2><p>Go on.</p><h2>End</h2><p>Stop.</p>"
        ),
    }
    files["OEBPS/content.opf"] = _opf(["cover.xhtml", "all.xhtml"], nav=False)
    built = load_book(_write_epub(tmp_path / "nonav.epub", files))
    assert [c.title for c in built.chapters] == ["Start", "Middle", "End"]


def test_inline_footnotes_page_numbers_and_hidden_text_are_not_read(tmp_path: Path) -> None:
    body = (
        "<h2>Ch</h2><p>Words<sup>12</sup> and more<a href='#fn1' role='doc-noteref'>[1]</a> text"
        "<span epub:type='pagebreak' title='7'>7</span> here.<span hidden=''>secret</span></p>"
        "<aside epub:type='footnote' id='fn1'><p>A footnote body.</p></aside>"
        "<p>Ruby <ruby>漢<rt>kan</rt></ruby> and a<script>alert(1)</script> line<br/>break.</p>"
    )
    files: dict[str, str | bytes] = {
        "OEBPS/a.xhtml": _page(body),
        "OEBPS/nav.xhtml": _nav('<li><a href="a.xhtml">Ch</a></li>'),
        "OEBPS/content.opf": _opf(["a.xhtml"]),
    }
    built = load_book(_write_epub(tmp_path / "notes.epub", files))
    assert built.chapters[0].paragraphs == ["Words and more text here.", "Ruby 漢 and a line break."]
