"""Hostile HTTP: every case is a clear 4xx, writes nothing, and leaks nothing.

After each case the test compares storage (every object under the farm's
prefix), the ledger's jobs, the tokens, and the service's temporary folder
with what they held before, and checks the answer names no internal
location (bucket, endpoint, temporary path) and carries no traceback.
"""

from __future__ import annotations

import io
import json
import socket
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from shared import redis_keys
from shared.storage import open_storage
from tests.support.api import ApiServer, wait_for_job
from tests.support.books import THREE_CHAPTERS

pytestmark = pytest.mark.timeout(600)


@dataclass
class World:
    api: ApiServer
    owner: str
    """Tenant 'alpha', read and submit."""
    other: str
    """Tenant 'beta', read and submit."""
    reader: str
    """Tenant 'alpha', read only."""
    revoked: str
    small: str
    """Tenant 'alpha', uploads up to 8 KiB."""
    limited: str
    """Tenant 'alpha', 3 requests per minute."""
    job: str
    """alpha's finished job."""
    chapter: str
    """A chapter file of that job."""
    size: int


@pytest.fixture(scope="module")
def world(api: ApiServer) -> World:
    owner = api.token("alpha", "read,submit")
    files = {"file": ("lighthouse.md", THREE_CHAPTERS.encode(), "text/markdown")}
    with api.client(owner) as client:
        job = client.post("/v1/jobs", files=files).json()["job"]
        detail = wait_for_job(client, job, {"done"})
        chapter = detail["chapters"][0]["file"]
        size = int(client.head(f"/v1/jobs/{job}/files/{chapter}").headers["content-length"])
    revoked = api.token("alpha", "read")
    listed = json.loads(api.farm.cli("tokens", "list", "--json").stdout)
    revoked_id = next(t["id"] for t in listed if revoked.startswith(f"vfk_{t['id']}_"))
    assert api.farm.cli("tokens", "revoke", revoked_id).returncode == 0
    return World(
        api=api,
        owner=owner,
        other=api.token("beta", "read,submit"),
        reader=api.token("alpha", "read"),
        revoked=revoked,
        small=api.token("alpha", "read,submit", "--max-upload-mb", "0.0078125"),
        limited=api.token("alpha", "read", "--rate", "3"),
        job=job,
        chapter=chapter,
        size=size,
    )


def snapshot(world: World) -> dict[str, object]:
    env = world.api.farm.env
    storage = open_storage(env["VOXFARM_STORAGE_URL"], endpoint_url=env["VOXFARM_S3_ENDPOINT_URL"])
    client = redis.Redis.from_url(env["VOXFARM_REDIS_URL"])
    jobs = [job.decode() for job in client.smembers(redis_keys.JOBS)]
    meta = {job: client.hgetall(redis_keys.job_key(job, "meta")) for job in jobs}
    for fields in meta.values():
        fields.pop(b"updated_at", None)
    return {
        "objects": sorted(storage.list("jobs")),
        "jobs": meta,
        "tokens": client.hgetall(redis_keys.API_TOKENS),
        "uploads": sorted(p.name for p in (world.api.farm.workdir / "api-tmp").iterdir()),
    }


def raw_http(world: World, payload: bytes, *, wait_s: float = 30.0) -> int:
    """Send bytes as they are (what no HTTP client library lets through) and read the status code."""
    with socket.create_connection(("127.0.0.1", world.api.port), timeout=wait_s) as sock:
        sock.sendall(payload)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        archive.writestr("OEBPS/bomb.xhtml", b"\0" * (40 * 1024 * 1024))
    return buffer.getvalue()


def get(token: str | None, path: str, **options: object) -> Callable[[World], httpx.Response]:
    def call(world: World) -> httpx.Response:
        with world.api.client(getattr(world, token) if token else None) as client:
            return client.get(path.format(job=world.job, chapter=world.chapter), **options)  # type: ignore[arg-type]

    return call


def post(token: str | None, path: str, **options: object) -> Callable[[World], httpx.Response]:
    def call(world: World) -> httpx.Response:
        with world.api.client(getattr(world, token) if token else None) as client:
            return client.post(path.format(job=world.job), **options)  # type: ignore[arg-type]

    return call


def header(name: str, value: str, path: str = "/v1/jobs") -> Callable[[World], httpx.Response]:
    def call(world: World) -> httpx.Response:
        with world.api.client() as client:
            return client.get(path, headers={name: value})

    return call


def forged(world: World) -> httpx.Response:
    real = world.owner
    tampered = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    return httpx.get(f"{world.api.url}/v1/jobs", headers={"Authorization": f"Bearer {tampered}"})


def ranged(value: str) -> Callable[[World], httpx.Response]:
    return get("owner", "/v1/jobs/{job}/files/{chapter}", headers={"Range": value})


def cross_tenant_cancel(world: World) -> httpx.Response:
    with world.api.client(world.other) as client:
        return client.post(f"/v1/jobs/{world.job}/cancel")


def cookie_on_post(world: World) -> httpx.Response:
    with httpx.Client(base_url=world.api.url, cookies={"voxfarm_token": world.owner}) as client:
        return client.post("/v1/jobs", json={"text": "Forged from another site."})


def over_rate(world: World) -> httpx.Response:
    """Three requests a minute: of ten in a row (two minutes at most) some must be refused."""
    with world.api.client(world.limited) as client:
        for _ in range(10):
            answer = client.get("/v1/me")
            if answer.status_code != 200:
                return answer
        return answer


def chunked_oversize(world: World) -> httpx.Response:
    def body() -> Iterator[bytes]:
        boundary = b"--b0undary\r\n"
        yield boundary + b'Content-Disposition: form-data; name="file"; filename="big.txt"\r\n\r\n'
        for _ in range(64):
            yield b"The sea was calm. " * 64
        yield b"\r\n--b0undary--\r\n"

    with world.api.client(world.small) as client:
        headers = {"Content-Type": "multipart/form-data; boundary=b0undary"}
        return client.post("/v1/jobs", content=body(), headers=headers)


def header_injection(world: World) -> int:
    request = (
        b"GET /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer " + world.owner.encode() + b"\rX-Injected: 1\r\n\r\n"
    )
    return raw_http(world, request)


def slow_upload(world: World) -> int:
    """Headers and a few bytes of a 1 MB body, then silence: the server must give up on its own."""
    request = (
        b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer " + world.owner.encode() + b"\r\n"
        b"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 1000000\r\n\r\n--xyz\r\n"
    )
    return raw_http(world, request)


BOMB = zip_bomb()
CASES: dict[str, tuple[Callable[[World], httpx.Response | int], set[int]]] = {
    "no token": (get(None, "/v1/jobs"), {401}),
    "garbage token": (header("Authorization", "Bearer not-a-token"), {401}),
    "wrong auth scheme": (header("Authorization", "Basic YWRtaW46YWRtaW4="), {401}),
    "forged token secret": (forged, {401}),
    "revoked token": (get("revoked", "/v1/jobs"), {401}),
    "oversized token": (header("Authorization", "Bearer " + "x" * 5000), {401}),
    "read-only token submits": (post("reader", "/v1/jobs", json={"text": "Hello."}), {403}),
    "read-only token cancels": (post("reader", "/v1/jobs/{job}/cancel"), {403}),
    "submit token reads tenants": (get("owner", "/v1/tenants"), {403}),
    "cross-tenant job": (get("other", "/v1/jobs/{job}"), {404}),
    "cross-tenant events": (get("other", "/v1/jobs/{job}/events"), {404}),
    "cross-tenant file": (get("other", "/v1/jobs/{job}/files/{chapter}"), {404}),
    "cross-tenant cancel": (cross_tenant_cancel, {404}),
    "traversal in job id": (get("owner", "/v1/jobs/..%2f..%2fcontrol%2ftenants.json"), {404}),
    "dots in job id": (get("owner", "/v1/jobs/..manifest"), {400, 404}),
    "traversal in file name": (get("owner", "/v1/jobs/{job}/files/..%2fplan.json"), {404}),
    "unlisted file name": (get("owner", "/v1/jobs/{job}/files/plan.json"), {404}),
    "traversal in upload name": (
        post("owner", "/v1/jobs", files={"file": ("../../../etc/passwd", b"root:x:0:0", "text/plain")}),
        {415},
    ),
    "oversized upload (Content-Length)": (
        post("small", "/v1/jobs", files={"file": ("big.txt", b"The sea. " * 2000, "text/plain")}),
        {413},
    ),
    "oversized upload (chunked)": (chunked_oversize, {413}),
    "zip bomb": (post("owner", "/v1/jobs", files={"file": ("bomb.epub", BOMB, "application/epub+zip")}), {400}),
    "zip bomb in a chapter preview": (
        post("owner", "/v1/books/contents", files={"file": ("bomb.epub", BOMB, "application/epub+zip")}),
        {400},
    ),
    "binary renamed .txt": (
        post("owner", "/v1/jobs", files={"file": ("book.txt", bytes(range(256)) * 8, "text/plain")}),
        {400},
    ),
    "unsupported format": (
        post("owner", "/v1/jobs", files={"file": ("book.pdf", b"%PDF-1.7", "application/pdf")}),
        {415},
    ),
    "wrong content type": (
        post("owner", "/v1/jobs", content=b"Once upon a time.", headers={"Content-Type": "text/plain"}),
        {415},
    ),
    "malformed JSON": (
        post("owner", "/v1/jobs", content=b'{"text": "unterminated', headers={"Content-Type": "application/json"}),
        {400},
    ),
    "JSON that is not an object": (post("owner", "/v1/jobs", json=["text"]), {422}),
    "unknown JSON field": (post("owner", "/v1/jobs", json={"text": "Hi.", "shell": "rm -rf /"}), {422}),
    "unknown voice": (post("owner", "/v1/jobs", json={"text": "Hi.", "voice": "../../etc"}), {400}),
    "multipart without boundary": (
        post("owner", "/v1/jobs", content=b"--x\r\n", headers={"Content-Type": "multipart/form-data"}),
        {400},
    ),
    "truncated multipart": (
        post(
            "owner",
            "/v1/jobs",
            content=b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nHello',
            headers={"Content-Type": "multipart/form-data; boundary=xyz"},
        ),
        {400},
    ),
    "multipart without a file": (post("owner", "/v1/jobs", files={"voice": (None, b"en_US-joe-medium")}), {400}),
    "two files": (
        post(
            "owner",
            "/v1/jobs",
            files=[("file", ("a.txt", b"One.", "text/plain")), ("file", ("b.txt", b"Two.", "text/plain"))],
        ),
        {400},
    ),
    "priority out of range": (
        lambda w: w.api.client(w.owner).put(f"/v1/jobs/{w.job}/priority", json={"priority": 1000}),
        {422},
    ),
    "priority above the tenants' limit": (
        lambda w: w.api.client(w.owner).put(f"/v1/jobs/{w.job}/priority", json={"priority": 90}),
        {403},
    ),
    "a book on the interactive lane": (post("owner", "/v1/jobs", json={"text": "Hi.", "lane": "interactive"}), {403}),
    "pausing a finished job": (lambda w: w.api.client(w.owner).post(f"/v1/jobs/{w.job}/pause"), {409}),
    "oversized JSON body": (post("owner", "/v1/audio/speech", content=b"{" + b" " * 400_000 + b"}"), {413}),
    "speech input over the limit": (
        post("owner", "/v1/audio/speech", json={"model": "tts-1", "input": "a" * 5000, "voice": "alloy"}),
        {400},
    ),
    "speech format not served": (
        post("owner", "/v1/audio/speech", json={"model": "m", "input": "Hi.", "voice": "x", "response_format": "pcm"}),
        {400},
    ),
    "range with several parts": (ranged("bytes=0-1,3-4,6-7"), {416}),
    "range past the end": (ranged("bytes=999999999-"), {416}),
    "inverted range": (ranged("bytes=50-10"), {416}),
    "range in other units": (ranged("items=0-10"), {416}),
    "empty suffix range": (ranged("bytes=-0"), {416}),
    "cookie sent on a POST (CSRF)": (cookie_on_post, {401}),
    "CORS preflight from another origin": (
        lambda w: httpx.options(
            f"{w.api.url}/v1/jobs",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        ),
        {405},
    ),
    "over the rate limit": (over_rate, {429}),
    "header injection": (header_injection, {400}),
    "slow upload that never finishes": (slow_upload, {408}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_request_is_refused_and_changes_nothing(world: World, case: str) -> None:
    attack, expected = CASES[case]
    before = snapshot(world)
    answer = attack(world)
    status = answer if isinstance(answer, int) else answer.status_code
    assert status in expected, f"{case}: {status} {'' if isinstance(answer, int) else answer.text[:300]}"
    if not isinstance(answer, int):
        text = answer.text
        assert "access-control-allow-origin" not in answer.headers
        if status != 405:
            assert answer.json()["error"]["message"], "every refusal says why"
        env = world.api.farm.env
        for secret in (env["VOXFARM_S3_ENDPOINT_URL"], env["VOXFARM_STORAGE_URL"].split("/")[2], "Traceback", "/tmp"):
            assert secret not in text, f"{case} leaks {secret!r}"
        assert world.owner not in text and world.other not in text
    assert snapshot(world) == before, f"{case} changed the farm"


def test_cross_tenant_answer_is_the_same_as_for_a_missing_job(world: World) -> None:
    with world.api.client(world.other) as client:
        theirs = client.get(f"/v1/jobs/{world.job}").json()["error"]["message"]
        missing = client.get("/v1/jobs/no-such-job-0123456789").json()["error"]["message"]
    assert theirs.replace(world.job, "ID") == missing.replace("no-such-job-0123456789", "ID")
    with world.api.client(world.other) as client:
        assert client.get("/v1/jobs").json() == [], "beta lists none of alpha's jobs"


def test_the_farm_still_serves_its_owner_after_the_attacks(world: World, tmp_path: Path) -> None:
    with world.api.client(world.owner) as client:
        assert client.get(f"/v1/jobs/{world.job}").json()["state"] == "done"
        ranged_bytes = client.get(f"/v1/jobs/{world.job}/files/{world.chapter}", headers={"Range": "bytes=0-3"})
        assert ranged_bytes.status_code == 206 and ranged_bytes.content == b"fLaC"
