"""Request bodies read under the caller's size limit.

A book upload is streamed to a file in a private temporary folder, never
held in memory; a body over the limit is refused as soon as its
Content-Length says so, or as soon as the bytes received pass the limit.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from producer.ingest import FORMATS

MAX_FORM_FIELDS = 40
_EXTENSION = re.compile(r"\.([A-Za-z]{2,8})$")


def content_length(request: Request, limit: int) -> None:
    raw = request.headers.get("content-length")
    if raw is None:
        return
    if not raw.isdigit():
        raise HTTPException(400, "invalid Content-Length")
    if int(raw) > limit:
        raise HTTPException(413, f"the request body is {int(raw)} bytes, over this token's limit of {limit}")


async def limited_stream(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    """The body in chunks, refusing more than ``limit`` bytes (timeouts: ``producer.api.limits``)."""
    content_length(request, limit)
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise HTTPException(413, f"the request body is over this token's limit of {limit} bytes")
        if chunk:
            yield chunk


async def read_json(request: Request, limit: int) -> Any:
    body = b"".join([chunk async for chunk in limited_stream(request, limit)])
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HTTPException(400, f"the body is not valid JSON: {exc}") from None


def book_suffix(filename: str | None) -> str:
    """The upload's format from its name's extension; the name itself is never used as a path."""
    match = _EXTENSION.search(filename or "")
    suffix = f".{match.group(1).lower()}" if match else ""
    if suffix not in FORMATS:
        supported = ", ".join(sorted(FORMATS))
        raise HTTPException(415, f"the file's name must end in one of {supported} (EPUB, Markdown, HTML, text, JSONL)")
    return suffix


_UNSAFE_IN_NAME = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]+")
MAX_NAME_BYTES = 120


def book_file_name(name: str | None, suffix: str) -> str:
    """The client's name for the book, safe as a file name in our own folder.

    Loaders fall back to the file's name for the title (and the title of a
    book without headings names its one chapter), so the upload keeps the
    name its client gave it, or the title given with inline text: separators,
    control characters and leading dots removed, at most 120 bytes, "book"
    when nothing is left.
    """
    cleaned = _UNSAFE_IN_NAME.sub(" ", name or "").strip().lstrip(".").strip()
    cleaned = " ".join(cleaned.encode()[:MAX_NAME_BYTES].decode(errors="ignore").split())
    return f"{cleaned or 'book'}{suffix}"


def _client_stem(filename: str | None) -> str:
    """The last part of the client's file name, without its extension."""
    base = re.split(r"[/\\]", filename or "")[-1]
    match = _EXTENSION.search(base)
    return base[: match.start()] if match else base


async def _save(upload: UploadFile, target: Path) -> Path:
    with target.open("wb") as out:
        while chunk := await upload.read(256 * 1024):
            out.write(chunk)
    return target


async def receive_book(request: Request, folder: Path, limit: int) -> tuple[Path, dict[str, str], Path | None]:
    """Stream a multipart upload to ``folder``: the ``file`` part (the book), an optional ``lexicon`` part,
    and the other fields."""
    parser = MultiPartParser(
        request.headers,
        limited_stream(request, limit),
        max_files=2,
        max_fields=MAX_FORM_FIELDS,
        max_part_size=64 * 1024,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise HTTPException(400, f"malformed multipart body: {exc.message}") from None
    fields: dict[str, str] = {}
    uploads: dict[str, UploadFile] = {}
    try:
        for name, value in form.multi_items():
            if name in fields or name in uploads:
                raise HTTPException(400, f"field {name!r} is given twice")
            if isinstance(value, UploadFile):
                if name not in ("file", "lexicon"):
                    raise HTTPException(400, f"unexpected file field {name!r}: send the book as 'file'")
                uploads[name] = value
            else:
                fields[name] = value
        if "file" not in uploads:
            raise HTTPException(400, "no book: send it in the multipart field 'file'")
        filename = uploads["file"].filename
        book = await _save(uploads["file"], folder / book_file_name(_client_stem(filename), book_suffix(filename)))
        lexicon = await _save(uploads["lexicon"], folder / "lexicon.tsv") if "lexicon" in uploads else None
        return book, fields, lexicon
    finally:
        await form.close()
