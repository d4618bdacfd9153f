"""Hostile-input guards: size limits, binary detection, strict decoding, safe zips and safe XML.

Books come from users and from the internet. Every loader reads through
these helpers, so a zip bomb, a path-traversal entry, an XXE payload or a
binary file renamed to .txt ends in a ``BadInputError`` that says what to do,
never in a traceback, a hang or a read outside the archive.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
import zlib
from pathlib import Path
from types import TracebackType

from lxml import etree

from shared.errors import BadInputError, NotFoundError

MAX_ZIP_ENTRIES = 10_000
MAX_COMPRESSION_RATIO = 200
"""Text compresses about 3-10x; a ratio above this on a sizeable entry is a zip bomb."""
RATIO_CHECK_MIN_BYTES = 1024 * 1024
MAX_ENTRY_BYTES = 64 * 1024 * 1024
"""No single XHTML chapter, OPF or cover needs more than this."""

_ENTITY_DECLARATION = re.compile(rb"<!ENTITY", re.IGNORECASE)
_CONTROL_BYTES = frozenset(range(32)) - {9, 10, 12, 13, 27}


def read_limited(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, refusing folders, unreadable files and anything over ``max_bytes``."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise NotFoundError(f"{path}: no such file; check the path") from None
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read it ({exc.strerror})") from None
    if path.is_dir():
        raise BadInputError(f"{path} is a folder; give the path of a book file")
    if size > max_bytes:
        raise BadInputError(
            f"{path.name} is {size / 2**20:.1f} MiB, over the {max_bytes / 2**20:.0f} MiB limit; "
            "split it into parts or raise the limit"
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read it ({exc.strerror})") from None


def check_not_binary(data: bytes, name: str) -> None:
    """Refuse NUL bytes or a high share of control bytes: an image, archive or program, not text."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return  # UTF-16 with a byte-order mark is full of NULs and still text
    sample = data[: 64 * 1024]
    if b"\x00" in sample:
        raise BadInputError(
            f"{name} looks like a binary file (it contains NUL bytes), not text; give a text or EPUB file"
        )
    controls = sum(1 for byte in sample if byte in _CONTROL_BYTES)
    if sample and controls / len(sample) > 0.05:
        raise BadInputError(f"{name} looks like a binary file (many control bytes), not text; give a text or EPUB file")


def decode_text(data: bytes, name: str) -> str:
    """Strict UTF-8 (a BOM allowed; UTF-16 only with its BOM); an error names the byte, line and column.

    Decoding is strict rather than lossy because a wrong guess silently reads
    garbage aloud for hours; the message tells the user how to convert.
    """
    check_not_binary(data, name)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise BadInputError(f"{name}: invalid UTF-16 at byte {exc.start}; save the file as UTF-8") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise BadInputError(
            f"{name} is not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line}, "
            f"column {column}); save it as UTF-8, e.g. `iconv -f WINDOWS-1252 -t UTF-8` (or -f GB18030 for Chinese)"
        ) from None


def _unsafe_name(name: str) -> bool:
    if not name or "\x00" in name or "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return True
    return ".." in name.split("/")


class SafeZip:
    """A read-only zip archive whose entries were checked before anything is read."""

    def __init__(self, path: Path, *, max_bytes: int, kind: str = "EPUB") -> None:
        self.name = path.name
        self.kind = kind
        if path.is_dir():
            raise BadInputError(f"{path} is a folder; give the path of the .epub file (unpacked books are not read)")
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise NotFoundError(f"{path}: no such file; check the path") from None
        if size > max_bytes:
            raise BadInputError(f"{path.name} is {size / 2**20:.1f} MiB, over the {max_bytes / 2**20:.0f} MiB limit")
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
            raise BadInputError(
                f"{path.name} is not a valid {kind}: the zip archive is damaged ({exc}); re-export it"
            ) from None
        try:
            self._check(max_bytes)
        except BadInputError:
            self._zip.close()
            raise
        self._names = {info.filename for info in self._zip.infolist()}

    def _check(self, max_bytes: int) -> None:
        infos = self._zip.infolist()
        if len(infos) > MAX_ZIP_ENTRIES:
            raise BadInputError(
                f"{self.name} has {len(infos)} archive entries (limit {MAX_ZIP_ENTRIES}); is it a {self.kind}?"
            )
        total = 0
        seen: set[str] = set()
        for info in infos:
            if info.filename in seen:
                raise BadInputError(
                    f"{self.name} holds the entry {info.filename!r} twice; readers disagree on which one to use, "
                    "so the file is refused"
                )
            seen.add(info.filename)
            if _unsafe_name(info.filename):
                raise BadInputError(
                    f"{self.name} contains an unsafe entry name {info.filename!r} (absolute or '..' path); "
                    "the file is damaged or malicious"
                )
            if info.flag_bits & 0x1:
                raise BadInputError(f"{self.name} has encrypted entries; voxfarm reads only DRM-free books")
            total += info.file_size
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > RATIO_CHECK_MIN_BYTES and ratio > MAX_COMPRESSION_RATIO:
                raise BadInputError(
                    f"{self.name}: entry {info.filename!r} expands {ratio:.0f}x (limit {MAX_COMPRESSION_RATIO}x); "
                    "this looks like a zip bomb and is not read"
                )
        if total > max_bytes:
            raise BadInputError(
                f"{self.name} expands to {total / 2**20:.0f} MiB, over the {max_bytes / 2**20:.0f} MiB limit; "
                "this looks like a zip bomb, or the limit needs raising"
            )

    def __contains__(self, name: str) -> bool:
        return name in self._names

    def names(self) -> list[str]:
        return sorted(self._names)

    def read(self, name: str, *, limit: int = MAX_ENTRY_BYTES) -> bytes:
        """An entry's bytes; never more than ``limit``, whatever its header claims."""
        if name not in self._names:
            raise BadInputError(f"{self.name}: the {self.kind} refers to {name!r}, which the archive does not contain")
        try:
            with self._zip.open(name) as handle:
                data = handle.read(limit + 1)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
            raise BadInputError(f"{self.name}: entry {name!r} cannot be read ({exc}); the file is damaged") from None
        if len(data) > limit:
            raise BadInputError(f"{self.name}: entry {name!r} is over {limit // 2**20} MiB; this is not read")
        return data

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> SafeZip:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def resolve_href(base: str, href: str) -> str | None:
    """An archive path for ``href`` relative to the entry ``base``; None if it leaves the archive."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(href)
    if parts.scheme or parts.netloc:
        return None
    target = posixpath.normpath(posixpath.join(posixpath.dirname(base), unquote(parts.path)))
    if target.startswith(("../", "/")) or target == "..":
        return None
    return target


def _xml_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def reject_entities(data: bytes, name: str) -> None:
    """Entity declarations serve no book; refusing them stops XXE and billion-laughs before parsing."""
    if _ENTITY_DECLARATION.search(data):
        raise BadInputError(
            f"{name} declares XML entities (<!ENTITY ...>), which voxfarm never expands; "
            "remove the DOCTYPE's internal subset"
        )


def parse_xml(data: bytes, name: str) -> etree._Element:
    """A strict, offline XML parse: no DTD loading, no entity expansion, no network."""
    reject_entities(data, name)
    try:
        root = etree.fromstring(data, parser=_xml_parser())
    except etree.XMLSyntaxError as exc:
        raise BadInputError(f"{name} is not well-formed XML ({exc}); the file is damaged") from None
    if root is None:
        raise BadInputError(f"{name} is empty")
    return root


def parse_markup(data: bytes, name: str) -> etree._Element:
    """XHTML parsed as XML when it is well-formed, else leniently as HTML (as reading systems do)."""
    reject_entities(data, name)
    try:
        root = etree.fromstring(data, parser=_xml_parser())
        if root is not None:
            return root
    except etree.XMLSyntaxError:
        pass
    from lxml import html

    parser = html.HTMLParser(
        encoding="utf-8", no_network=True, remove_comments=True, remove_pis=True, default_doctype=False
    )
    try:
        document = html.document_fromstring(data, parser=parser)
    except (etree.ParserError, etree.XMLSyntaxError, ValueError) as exc:
        raise BadInputError(f"{name} cannot be parsed as XHTML or HTML ({exc})") from None
    return document
