"""Output files streamed from storage with HTTP Range support, so audio players can seek.

One range per request (``bytes=a-b``, ``bytes=a-``, ``bytes=-n``): that is
what players send. Several ranges, a malformed header or a range past the
end get a 416 with ``Content-Range: bytes */size`` instead of the whole file,
so a client never receives more than it asked for.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from producer.api.auth import Reader, farm_of

router = APIRouter(tags=["files"])
_RANGE = re.compile(r"^bytes=(\d{0,18})-(\d{0,18})$")


def parse_range(header: str, size: int) -> tuple[int, int]:
    """(first, last) byte of a single range, inclusive; HTTPException 416 for anything unsatisfiable."""
    unsatisfiable = HTTPException(
        416,
        f"unsatisfiable range {header[:80]!r}: one range of bytes 0-{size - 1}",
        {"Content-Range": f"bytes */{size}"},
    )
    match = _RANGE.match(header.strip())
    if not match or not (match.group(1) or match.group(2)):
        raise unsatisfiable
    first_text, last_text = match.groups()
    if not first_text:
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise unsatisfiable
        return max(size - suffix, 0), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if first > last or first >= size:
        raise unsatisfiable
    return first, min(last, size - 1)


@router.api_route("/v1/jobs/{job}/files/{name}", methods=["GET", "HEAD"], summary="an output file (Range supported)")
async def output_file(job: str, name: str, request: Request, caller: Reader) -> Response:
    farm = farm_of(request)
    path, size, content_type = await run_in_threadpool(farm.output_file, caller.tenant, job, name)
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}",
        "Cache-Control": "private, max-age=300",
        "X-Content-Type-Options": "nosniff",
    }
    header = request.headers.get("range")
    first, last, status = 0, size - 1, 200
    if header is not None:
        first, last = parse_range(header, size)
        status = 206
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    headers["Content-Length"] = str(last - first + 1 if size else 0)
    if request.method == "HEAD" or size == 0:
        return Response(status_code=status, headers=headers, media_type=content_type)
    return StreamingResponse(farm.read_range(path, first, last), status, headers, media_type=content_type)
