"""Small books written at test time, so tests say exactly what they render."""

from __future__ import annotations

from pathlib import Path

THREE_CHAPTERS = """---
title: The Lighthouse Keepers
author: Test Author
language: en
---

# The Lighthouse Keepers

## The Storm

The wind rose in the evening. Waves broke over the rocks below the tower.

Anna climbed the stairs with a lamp in her hand.

## The Ship

A small ship appeared on the horizon. It was drifting toward the reef.

## The Morning

By morning the sea was calm again. Everyone on board was safe.
"""


def write_book(directory: Path, text: str = THREE_CHAPTERS, name: str = "lighthouse.md") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


# --- books for the audiobook and re-render tests ----------------------------------

#: Three short chapters; "lantern" is in the first and last chapter only (the lexicon test respells it).
KEEPERS_EDITION_ONE = """---
title: The Keepers of the Light
author: Test Author
language: en
---

# The Keepers of the Light

## Dusk

Anna lit the lantern at the top of the tower. The gulls went quiet over the harbour.

## Night

A storm came in from the west. Rain beat against the glass until morning.

## Dawn

The sea was calm again at first light. Anna put out the lantern and went down the stairs.
"""

#: The same book with one sentence of the second chapter rewritten.
KEEPERS_EDITION_TWO = KEEPERS_EDITION_ONE.replace(
    "Rain beat against the glass until morning.", "Hail rattled on the glass until the small hours."
)


def write_epub(
    path: Path,
    *,
    title: str,
    author: str,
    language: str,
    chapters: list[tuple[str, list[str]]],
    cover: bytes | None = None,
) -> Path:
    """A small EPUB 3: one XHTML file per chapter, titled in the navigation document, and an optional PNG cover."""
    import zipfile
    from xml.sax.saxutils import escape

    items: list[str] = []
    spine: list[str] = []
    nav: list[str] = []
    files: dict[str, str | bytes] = {}
    for number, (chapter_title, paragraphs) in enumerate(chapters, start=1):
        name = f"chapter-{number}.xhtml"
        body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
        files[f"epub/text/{name}"] = (
            '<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml" '
            'xmlns:epub="http://www.idpf.org/2007/ops"><head><title>c</title></head>'
            f'<body><section epub:type="chapter"><h2>{escape(chapter_title)}</h2>{body}</section></body></html>'
        )
        items.append(f'<item href="text/{name}" id="c{number}" media-type="application/xhtml+xml"/>')
        spine.append(f'<itemref idref="c{number}"/>')
        nav.append(f'<li><a href="text/{name}">{escape(chapter_title)}</a></li>')
    if cover is not None:
        files["epub/images/cover.png"] = cover
        items.append('<item href="images/cover.png" id="cover" media-type="image/png" properties="cover-image"/>')
    files["epub/toc.xhtml"] = (
        '<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml" '
        'xmlns:epub="http://www.idpf.org/2007/ops"><head><title>Contents</title></head><body>'
        f'<nav epub:type="toc"><ol>{"".join(nav)}</ol></nav></body></html>'
    )
    files["epub/content.opf"] = (
        '<?xml version="1.0" encoding="utf-8"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" '
        'unique-identifier="uid"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f'<dc:identifier id="uid">urn:voxfarm:test</dc:identifier><dc:title>{escape(title)}</dc:title>'
        f"<dc:creator>{escape(author)}</dc:creator><dc:language>{escape(language)}</dc:language></metadata>"
        '<manifest><item href="toc.xhtml" id="toc" media-type="application/xhtml+xml" properties="nav"/>'
        f"{''.join(items)}</manifest><spine>{''.join(spine)}</spine></package>"
    )
    files["META-INF/container.xml"] = (
        '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
        '<rootfiles><rootfile full-path="epub/content.opf" media-type="application/oebps-package+xml"/>'
        "</rootfiles></container>"
    )
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        for name, data in files.items():
            archive.writestr(name, data)
    return path
