"""Rebuild the sample book: two short chapters of The Time Machine as a small EPUB 3.

The sample goes through the same EPUB reader as a user's book. It keeps the
Standard Ebooks title page, imprint and uncopyright pages, which the reader
leaves out by default, so the public-domain notice travels with the file
without being read aloud. The output is byte-for-byte reproducible.

    python -m producer.samples.make_sample [SOURCE.epub] [OUTPUT.epub]
"""

from __future__ import annotations

import struct
import sys
import zipfile
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent.parent / "tests" / "corpus" / "h-g-wells_the-time-machine.epub"
OUTPUT = HERE / "the-time-machine-sample.epub"
CHAPTERS = [("chapter-10.xhtml", "X"), ("epilogue.xhtml", "Epilogue")]
MATTER = [("titlepage.xhtml", "Titlepage"), ("imprint.xhtml", "Imprint")]
BACK_MATTER = [("uncopyright.xhtml", "Uncopyright")]
STYLES = ["core.css", "se.css", "local.css"]
IMAGES = ["titlepage.svg", "logo.svg"]
_FIXED_TIME = (2024, 1, 1, 0, 0, 0)

_CONTAINER = """<?xml version="1.0" encoding="utf-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
\t<rootfiles>
\t\t<rootfile full-path="epub/content.opf" media-type="application/oebps-package+xml"/>
\t</rootfiles>
</container>
"""

_RIGHTS = (
    "The source text and artwork in this ebook are believed to be in the United States public domain. "
    "Standard Ebooks and the creators of this sample dedicate their contributions to the worldwide public domain "
    "via the CC0 1.0 Universal Public Domain Dedication."
)


def _opf(documents: list[tuple[str, str]]) -> str:
    items = "\n".join(
        f'\t\t<item href="text/{name}" id="{name}" media-type="application/xhtml+xml"/>' for name, _ in documents
    )
    styles = "\n".join(f'\t\t<item href="css/{name}" id="{name}" media-type="text/css"/>' for name in STYLES)
    images = "\n".join(f'\t\t<item href="images/{name}" id="{name}" media-type="image/svg+xml"/>' for name in IMAGES)
    spine = "\n".join(f'\t\t<itemref idref="{name}"/>' for name, _ in documents)
    return f"""<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid" xml:lang="en-GB">
\t<metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
\t\t<dc:identifier id="uid">https://standardebooks.org/ebooks/h-g-wells/the-time-machine#voxfarm-sample</dc:identifier>
\t\t<dc:title id="title">The Time Machine (two-chapter sample)</dc:title>
\t\t<dc:creator id="author">H. G. Wells</dc:creator>
\t\t<meta property="role" refines="#author" scheme="marc:relators">aut</meta>
\t\t<dc:language>en-GB</dc:language>
\t\t<dc:publisher>Standard Ebooks</dc:publisher>
\t\t<dc:source>https://standardebooks.org/ebooks/h-g-wells/the-time-machine</dc:source>
\t\t<dc:rights>{_RIGHTS}</dc:rights>
\t\t<meta property="dcterms:modified">2024-01-01T00:00:00Z</meta>
\t</metadata>
\t<manifest>
\t\t<item href="toc.xhtml" id="toc.xhtml" media-type="application/xhtml+xml" properties="nav"/>
\t\t<item href="images/cover.png" id="cover.png" media-type="image/png" properties="cover-image"/>
{images}
{styles}
{items}
\t</manifest>
\t<spine>
{spine}
\t</spine>
</package>
"""


def _nav(documents: list[tuple[str, str]]) -> str:
    entries = "\n".join(f'\t\t\t\t<li><a href="text/{name}">{label}</a></li>' for name, label in documents)
    return f"""<?xml version="1.0" encoding="utf-8"?>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" xml:lang="en-GB">
\t<head>
\t\t<title>Table of Contents</title>
\t</head>
\t<body epub:type="frontmatter">
\t\t<nav id="toc" epub:type="toc">
\t\t\t<h2 epub:type="title">Table of Contents</h2>
\t\t\t<ol>
{entries}
\t\t\t</ol>
\t\t</nav>
\t</body>
</html>
"""


def cover_png(width: int = 300, height: int = 450) -> bytes:
    """A plain placeholder cover (a dark gradient, no artwork), so the sample exercises cover embedding."""
    rows = bytearray()
    for y in range(height):
        shade = 40 + (y * 60) // height
        rows.append(0)
        rows.extend(bytes((shade // 2, shade // 2, shade)) * width)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


def _write(archive: zipfile.ZipFile, name: str, data: bytes, *, compress: bool = True) -> None:
    info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def build(source: Path = SOURCE, output: Path = OUTPUT) -> Path:
    documents = MATTER + CHAPTERS + BACK_MATTER
    with zipfile.ZipFile(source) as book, zipfile.ZipFile(output, "w") as sample:
        _write(sample, "mimetype", b"application/epub+zip", compress=False)
        _write(sample, "META-INF/container.xml", _CONTAINER.encode())
        _write(sample, "epub/content.opf", _opf(documents).encode())
        _write(sample, "epub/toc.xhtml", _nav(documents).encode())
        _write(sample, "epub/images/cover.png", cover_png(), compress=False)
        for name in IMAGES:
            _write(sample, f"epub/images/{name}", book.read(f"epub/images/{name}"))
        for name in STYLES:
            _write(sample, f"epub/css/{name}", book.read(f"epub/css/{name}"))
        for name, _ in documents:
            _write(sample, f"epub/text/{name}", book.read(f"epub/text/{name}"))
    return output


if __name__ == "__main__":
    arguments = [Path(a) for a in sys.argv[1:3]]
    print(build(*arguments))
