"""The EPUB package: container, OPF metadata/manifest/spine, and the table of contents (nav or NCX).

Everything here reads through ``SafeZip`` and ``parse_xml``, and every
reference is resolved inside the archive: an href that climbs out of it
('../../etc/passwd') is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from producer.ingest.headings import clean_inline
from producer.ingest.html import localname, semantic_types
from producer.ingest.safety import SafeZip, parse_markup, parse_xml, resolve_href
from shared.errors import BadInputError

_OPF_MEDIA = "application/oebps-package+xml"
_DOCUMENT_TYPES = frozenset({"application/xhtml+xml", "text/html", "application/xml", "text/x-oeb1-document"})
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "image/svg+xml"})
MAX_COVER_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Item:
    id: str
    path: str
    media_type: str
    properties: frozenset[str] = frozenset()

    @property
    def is_document(self) -> bool:
        return self.media_type in _DOCUMENT_TYPES or self.path.lower().endswith((".xhtml", ".html", ".htm"))


@dataclass
class NavEntry:
    """One table-of-contents entry; ``children`` are the entries nested under it."""

    label: str
    path: str | None
    fragment: str | None
    children: list[NavEntry] = field(default_factory=list)


@dataclass
class Package:
    opf_path: str
    title: str | None
    authors: list[str]
    language: str | None
    items: dict[str, Item]
    spine: list[tuple[Item, bool]]
    """(item, linear) in reading order."""
    toc_id: str | None
    cover_id: str | None
    guide: dict[str, str]
    """Archive path -> EPUB 2 guide reference type ('cover', 'copyright-page', 'toc', ...)."""


def _children(element: etree._Element, name: str) -> list[etree._Element]:
    return [child for child in element if localname(child) == name]


def _first(element: etree._Element, name: str) -> etree._Element | None:
    return next((e for e in element.iter() if localname(e) == name), None)


def _text(element: etree._Element) -> str:
    return clean_inline("".join(element.itertext()))


def _resolve(base: str, href: str, archive: SafeZip) -> str:
    target = resolve_href(base, href)
    if target is None:
        raise BadInputError(
            f"{archive.name}: the EPUB refers to {href!r}, outside the archive; the file is damaged or malicious"
        )
    return target


def rootfile(archive: SafeZip) -> str:
    """The OPF path from META-INF/container.xml (or the only .opf in the archive)."""
    if "META-INF/container.xml" in archive:
        root = parse_xml(archive.read("META-INF/container.xml"), "META-INF/container.xml")
        for element in root.iter():
            full_path = element.get("full-path")
            if localname(element) == "rootfile" and full_path and element.get("media-type", _OPF_MEDIA) == _OPF_MEDIA:
                return _resolve("", str(full_path), archive)
    opfs = [name for name in archive.names() if name.lower().endswith(".opf")]
    if len(opfs) == 1:
        return opfs[0]
    raise BadInputError(
        f"{archive.name} is not a valid EPUB: no package document (META-INF/container.xml); re-export it"
    )


def read_package(archive: SafeZip) -> Package:
    opf_path = rootfile(archive)
    root = parse_xml(archive.read(opf_path), opf_path)
    metadata = _first(root, "metadata")
    manifest = _first(root, "manifest")
    spine_element = _first(root, "spine")
    if manifest is None or spine_element is None:
        raise BadInputError(f"{archive.name}: {opf_path} has no manifest or spine; the EPUB is damaged")
    items: dict[str, Item] = {}
    for element in _children(manifest, "item"):
        item_id, href = element.get("id"), element.get("href")
        if item_id and href:
            properties = frozenset((element.get("properties") or "").split())
            items[item_id] = Item(item_id, _resolve(opf_path, href, archive), element.get("media-type", ""), properties)
    spine = [
        (items[ref], element.get("linear", "yes") != "no")
        for element in _children(spine_element, "itemref")
        if (ref := element.get("idref")) in items
    ]
    guide: dict[str, str] = {}
    guide_element = _first(root, "guide")
    if guide_element is not None:
        for reference in _children(guide_element, "reference"):
            href, kind = reference.get("href"), reference.get("type")
            if href and kind and (target := resolve_href(opf_path, href.partition("#")[0])):
                guide[target] = kind.lower()
    title, authors, language, cover_id = _metadata(metadata) if metadata is not None else (None, [], None, None)
    return Package(opf_path, title, authors, language, items, spine, spine_element.get("toc"), cover_id, guide)


def _metadata(metadata: etree._Element) -> tuple[str | None, list[str], str | None, str | None]:
    roles: dict[str, set[str]] = {}
    cover_id = None
    for meta in _children(metadata, "meta"):
        if meta.get("property") == "role" and (refines := meta.get("refines")):
            roles.setdefault(refines.lstrip("#"), set()).add(_text(meta).lower())
        if meta.get("name") == "cover" and meta.get("content"):
            cover_id = meta.get("content")
    titles = [_text(e) for e in _children(metadata, "title") if _text(e)]
    authors: list[str] = []
    for creator in _children(metadata, "creator"):
        role = creator.get("{http://www.idpf.org/2007/opf}role") or creator.get("role")
        creator_roles = {role.lower()} if role else roles.get(creator.get("id") or "", set())
        name = _text(creator)
        if name and (not creator_roles or "aut" in creator_roles) and name not in authors:
            authors.append(name)
    languages = [_text(e) for e in _children(metadata, "language") if _text(e)]
    return (titles[0] if titles else None), authors, (languages[0] if languages else None), cover_id


def check_drm(archive: SafeZip, package: Package) -> None:
    """Encrypted content documents (Adobe/Readium DRM) cannot be read; font obfuscation is harmless."""
    if "META-INF/encryption.xml" not in archive:
        return
    root = parse_xml(archive.read("META-INF/encryption.xml"), "META-INF/encryption.xml")
    documents = {item.path for item, _ in package.spine}
    for reference in root.iter():
        if localname(reference) == "cipherreference" and reference.get("URI"):
            target = resolve_href("", str(reference.get("URI")))
            if target in documents:
                raise BadInputError(
                    f"{archive.name} is DRM-protected (its text is encrypted); voxfarm reads only DRM-free books"
                )


def table_of_contents(archive: SafeZip, package: Package) -> tuple[list[NavEntry], dict[str, str]]:
    """The EPUB 3 nav document's toc (else the EPUB 2 NCX), and landmark types by archive path."""
    nav_item = next((i for i in package.items.values() if "nav" in i.properties), None)
    if nav_item is not None and nav_item.path in archive:
        root = parse_markup(archive.read(nav_item.path), nav_item.path)
        navs = [e for e in root.iter() if localname(e) == "nav"]
        toc = next((n for n in navs if "toc" in semantic_types(n) or "doc-toc" in semantic_types(n)), None)
        landmarks: dict[str, str] = {}
        for nav in navs:
            if "landmarks" in semantic_types(nav):
                for link in nav.iter():
                    if localname(link) == "a" and link.get("href"):
                        target = resolve_href(nav_item.path, str(link.get("href")).partition("#")[0])
                        if target:
                            landmarks[target] = " ".join(sorted(semantic_types(link)))
        entries = _nav_list(_first(toc, "ol"), nav_item.path) if toc is not None else []
        if entries:
            return entries, landmarks
    ncx_item = package.items.get(package.toc_id or "") or next(
        (i for i in package.items.values() if i.media_type == "application/x-dtbncx+xml"), None
    )
    if ncx_item is not None and ncx_item.path in archive:
        root = parse_xml(archive.read(ncx_item.path), ncx_item.path)
        nav_map = _first(root, "navmap")
        if nav_map is not None:
            return _ncx_points(nav_map, ncx_item.path), {}
    return [], {}


def _split_href(base: str, href: str | None) -> tuple[str | None, str | None]:
    if not href:
        return None, None
    path, _, fragment = href.partition("#")
    target = resolve_href(base, path) if path else base
    return target, fragment or None


def _nav_list(ol: etree._Element | None, base: str) -> list[NavEntry]:
    if ol is None:
        return []
    entries: list[NavEntry] = []
    for li in _children(ol, "li"):
        link = next((c for c in li if localname(c) in ("a", "span")), None)
        sub = next((c for c in li if localname(c) == "ol"), None)
        label = _text(link) if link is not None else ""
        path, fragment = _split_href(base, link.get("href") if link is not None else None)
        entries.append(NavEntry(label, path, fragment, _nav_list(sub, base)))
    return entries


def _ncx_points(parent: etree._Element, base: str) -> list[NavEntry]:
    entries: list[NavEntry] = []
    for point in _children(parent, "navpoint"):
        label_element = _first(point, "navlabel")
        content = next((c for c in point if localname(c) == "content"), None)
        path, fragment = _split_href(base, content.get("src") if content is not None else None)
        label = _text(label_element) if label_element is not None else ""
        entries.append(NavEntry(label, path, fragment, _ncx_points(point, base)))
    return entries


def read_cover(archive: SafeZip, package: Package) -> tuple[bytes | None, str | None]:
    """The cover image and its MIME type: EPUB 3 cover-image, EPUB 2 <meta name="cover">, or the guide's cover page."""
    candidates = [i for i in package.items.values() if "cover-image" in i.properties]
    if package.cover_id and package.cover_id in package.items:
        candidates.append(package.items[package.cover_id])
    for item in candidates:
        if item.media_type in _IMAGE_TYPES and item.path in archive:
            return archive.read(item.path, limit=MAX_COVER_BYTES), item.media_type
    for path, kind in package.guide.items():
        if kind == "cover" and path in archive:
            page = parse_markup(archive.read(path), path)
            image = next((e for e in page.iter() if localname(e) in ("img", "image")), None)
            href = None
            if image is not None:
                href = image.get("src") or image.get("{http://www.w3.org/1999/xlink}href") or image.get("href")
            target = resolve_href(path, href) if href else None
            found = next((i for i in package.items.values() if i.path == target), None)
            if found is not None and found.media_type in _IMAGE_TYPES and found.path in archive:
                return archive.read(found.path, limit=MAX_COVER_BYTES), found.media_type
    return None, None
