"""POST /v1/jobs: a book uploaded (multipart, with an optional ``lexicon`` file) or given inline (JSON),
planned as `voxfarm submit` plans it; a cast travels as the TOML text of a cast file (field ``cast``).

The upload lands in a private temporary folder under the client's file
name made safe (``uploads.book_file_name``: a loader takes the title from
it when the book names none), goes through the same
loaders and safety checks as a file on the command line, and the folder is
removed when the request ends, whatever happens.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from producer.api.auth import Submitter, check_caller_may_schedule, farm_of
from producer.api.farm import Farm
from producer.api.models import BookOptions, Submitted, TextSubmission
from producer.api.uploads import book_file_name, read_json, receive_book
from shared.errors import BadInputError

router = APIRouter(tags=["jobs"])

_TEXT_SUFFIX = {"txt": ".txt", "md": ".md", "html": ".html"}
_FLAGS = ("include_matter", "no_titles", "subtitle_speakers")


def _options(fields: dict[str, Any], model: type[BookOptions]) -> BookOptions:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
        raise HTTPException(422, f"invalid submission: {problems}") from None


def _form_options(fields: dict[str, str]) -> BookOptions:
    """Form fields are strings: flags read 'true'/'1'/'on', empty fields are left out."""
    values: dict[str, Any] = {k: v for k, v in fields.items() if v != ""}
    for flag in _FLAGS:
        if flag in values:
            values[flag] = values[flag].lower() in ("1", "true", "on", "yes")
    return _options(values, BookOptions)


def _bad_input_from_upload(exc: BadInputError, folder: Path) -> BadInputError:
    """Loader messages name the file: show the client its own kind of name, never our temporary folder."""
    return type(exc)(str(exc).replace(f"{folder}/", "").replace(str(folder), "upload"))


def _plan_and_submit(
    farm: Farm, tenant: str, book: Path, options: BookOptions, folder: Path, *, lexicon: Path | None
) -> Submitted:
    cast = None
    if options.cast is not None:
        cast = folder / "cast.toml"
        cast.write_text(options.cast, encoding="utf-8")
    try:
        result, chapters = farm.submit(
            tenant, book, options.planner_options(lexicon, cast), priority=options.priority, lane=options.lane
        )
    except BadInputError as exc:
        raise _bad_input_from_upload(exc, folder) from None
    return Submitted(
        job=result.job,
        segments_total=result.total,
        segments_reused=result.reused,
        chapters=chapters,
        completed=result.completed,
        planning=result.planning,
    )


@router.post(
    "/v1/jobs",
    status_code=201,
    summary="submit a book: multipart (field 'file' plus the options) or JSON ({text, format, ...options})",
)
async def submit(request: Request, caller: Submitter) -> Submitted:
    farm = farm_of(request)
    limit = caller.token.max_upload_bytes or farm.settings.api_max_upload_bytes
    content_type = request.headers.get("content-type", "").lower()
    folder = Path(tempfile.mkdtemp(prefix="voxfarm-upload-"))
    try:
        if content_type.startswith("multipart/form-data"):
            if "boundary=" not in content_type:
                raise HTTPException(400, "malformed multipart body: the Content-Type has no boundary")
            book, fields, lexicon = await receive_book(request, folder, limit)
            options = _form_options(fields)
        elif content_type.split(";")[0].strip() == "application/json":
            document = await read_json(request, limit)
            if not isinstance(document, dict):
                raise HTTPException(422, "invalid submission: the body must be a JSON object")
            inline = _options(document, TextSubmission)
            assert isinstance(inline, TextSubmission)
            book = folder / book_file_name(inline.title, _TEXT_SUFFIX[inline.format])
            book.write_text(inline.text, encoding="utf-8")
            options = BookOptions.model_validate(inline.model_dump(exclude={"text", "format", "title"}))
            lexicon = None
        else:
            raise HTTPException(415, "send the book as multipart/form-data (field 'file') or application/json")
        check_caller_may_schedule(caller, farm, priority=options.priority, lane=options.lane)
        return await run_in_threadpool(_plan_and_submit, farm, caller.tenant, book, options, folder, lexicon=lexicon)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Contents(BaseModel):
    title: str
    author: str | None
    chapters: list[dict[str, Any]]


def _contents(farm: Farm, book: Path, include_matter: bool, folder: Path) -> Contents:
    try:
        return Contents.model_validate(farm.contents(book, include_matter=include_matter))
    except BadInputError as exc:
        raise _bad_input_from_upload(exc, folder) from None


@router.post(
    "/v1/books/contents", summary="a book's chapters as they would be read (multipart 'file'); nothing is kept"
)
async def contents(request: Request, caller: Submitter) -> Contents:
    farm = farm_of(request)
    limit = caller.token.max_upload_bytes or farm.settings.api_max_upload_bytes
    content_type = request.headers.get("content-type", "").lower()
    if not content_type.startswith("multipart/form-data") or "boundary=" not in content_type:
        raise HTTPException(415, "send the book as multipart/form-data (field 'file')")
    folder = Path(tempfile.mkdtemp(prefix="voxfarm-upload-"))
    try:
        book, fields, _ = await receive_book(request, folder, limit)
        include_matter = fields.get("include_matter", "").lower() in ("1", "true", "on", "yes")
        return await run_in_threadpool(_contents, farm, book, include_matter, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
