"""The HTTP service against a real farm: submit, watch (SSE), download with Range, cancel, speech, metrics.

`voxfarm api` runs in its own process on a loopback port, over real Redis,
SeaweedFS, a CPU worker and the control service; tokens are made with
`voxfarm tokens create`, as an operator would.
"""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import time
from pathlib import Path

import httpx
import pytest
import soundfile

from tests.support.api import ApiServer, start_api, wait_for_job
from tests.support.books import THREE_CHAPTERS

pytestmark = pytest.mark.timeout(600)

LONG_BOOK = "# A Long Wait\n\n" + "\n\n".join(
    f"## Part {part}\n\n" + " ".join(f"Sentence {part}-{n} goes on about the sea and the tower." for n in range(40))
    for part in range(1, 6)
)


def read_events(client: httpx.Client, job: str) -> list[tuple[str, dict[str, object]]]:
    """Every event of the job's SSE stream, until the server ends it."""
    events: list[tuple[str, dict[str, object]]] = []
    with client.stream("GET", f"/v1/jobs/{job}/events", timeout=300) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[len("data: ") :])))
    return events


def test_submit_watch_and_download_with_range(api: ApiServer, tmp_path: Path) -> None:
    client = api.client(api.token("studio"))
    files = {"file": ("lighthouse.md", THREE_CHAPTERS.encode(), "text/markdown")}
    submitted = client.post("/v1/jobs", files=files, data={"chapter_format": "flac", "subtitles": "vtt"})
    assert submitted.status_code == 201, submitted.text
    job = submitted.json()["job"]
    assert submitted.json()["chapters"] == 3

    events = read_events(client, job)
    progress = [data for name, data in events if name == "progress"]
    assert events[-1][0] == "end" and events[-1][1]["state"] == "done"
    done_counts = [int(str(p["segments_done"])) for p in progress]
    assert done_counts == sorted(done_counts), "progress never goes backwards"
    assert progress[-1]["progress"] == 1.0

    detail = client.get(f"/v1/jobs/{job}").json()
    assert detail["state"] == "done" and detail["tenant"] == "studio"
    assert [c["title"] for c in detail["chapters"]] == ["The Storm", "The Ship", "The Morning"]
    assert all(c["segments_done"] == c["segments"] and c["duration_s"] > 0 for c in detail["chapters"])
    manifest = client.get(f"/v1/jobs/{job}/manifest").json()
    assert manifest["job"] == job and len(manifest["chapters"]) == 3

    name = detail["chapters"][0]["file"]
    whole = client.get(f"/v1/jobs/{job}/files/{name}")
    assert whole.status_code == 200 and whole.headers["content-type"] == "audio/flac"
    assert whole.headers["accept-ranges"] == "bytes"
    samples, rate = soundfile.read(io.BytesIO(whole.content))
    assert rate == 22050 and len(samples) / rate == pytest.approx(detail["chapters"][0]["duration_s"], abs=0.05)

    size = len(whole.content)
    head = client.get(f"/v1/jobs/{job}/files/{name}", headers={"Range": "bytes=0-99"})
    assert head.status_code == 206 and head.content == whole.content[:100]
    assert head.headers["content-range"] == f"bytes 0-99/{size}"
    middle = client.get(f"/v1/jobs/{job}/files/{name}", headers={"Range": f"bytes=1000-{size + 500}"})
    assert middle.status_code == 206 and middle.content == whole.content[1000:]
    tail = client.get(f"/v1/jobs/{job}/files/{name}", headers={"Range": "bytes=-64"})
    assert tail.status_code == 206 and tail.content == whole.content[-64:]
    assert client.head(f"/v1/jobs/{job}/files/{name}").headers["content-length"] == str(size)

    m4b_name = detail["files"]["m4b"]
    m4b = client.get(f"/v1/jobs/{job}/files/{m4b_name}", headers={"Range": "bytes=4-7"})
    assert m4b.status_code == 206 and m4b.content == b"ftyp"
    assert m4b.headers["content-type"] == "audio/mp4"
    subtitles = manifest["chapters"][1]["subtitles"]["vtt"]
    assert client.get(f"/v1/jobs/{job}/files/{subtitles}").text.startswith("WEBVTT")
    for unlisted in ("plan.json", "submission.json", "manifest.json"):
        assert client.get(f"/v1/jobs/{job}/files/{unlisted}").status_code == 404, "only listed outputs are served"


def test_a_book_s_chapters_are_listed_before_it_is_submitted(api: ApiServer) -> None:
    client = api.client(api.token("previewers"))
    files = {"file": ("lighthouse.md", THREE_CHAPTERS.encode(), "text/markdown")}
    contents = client.post("/v1/books/contents", files=files)
    assert contents.status_code == 200, contents.text
    assert contents.json()["title"] == "The Lighthouse Keepers"
    assert [c["title"] for c in contents.json()["chapters"]] == ["The Storm", "The Ship", "The Morning"]
    assert client.get("/v1/jobs").json() == [], "a preview submits nothing"

    picked = client.post("/v1/jobs", files=files, data={"chapters": "1,3", "book_format": "none", "priority": "5"})
    assert picked.status_code == 201 and picked.json()["chapters"] == 2
    detail = client.get(f"/v1/jobs/{picked.json()['job']}").json()
    assert [c["title"] for c in detail["chapters"]] == ["The Storm", "The Morning"]
    assert detail["priority"] == 5
    done = wait_for_job(client, picked.json()["job"], {"done"})
    assert [c["file"] for c in done["chapters"]] == ["001-the-storm.flac", "002-the-morning.flac"]
    assert "m4b" not in done["files"]


def test_a_lexicon_travels_with_the_upload_and_changes_what_is_read(api: ApiServer) -> None:
    client = api.client(api.token("lexicographers"))
    book = ("lighthouse.md", THREE_CHAPTERS.encode(), "text/markdown")
    options = {"book_format": "none", "priority": "1"}
    plain = client.post("/v1/jobs", files={"file": book}, data=options)
    respelled = client.post(
        "/v1/jobs",
        files={"file": book, "lexicon": ("words.tsv", b"Anna\tAhna\n", "text/tab-separated-values")},
        data=options,
    )
    assert plain.status_code == respelled.status_code == 201, respelled.text
    assert plain.json()["job"] != respelled.json()["job"], "the respelled sentences have other content keys"
    broken = client.post("/v1/jobs", files={"file": book, "lexicon": ("words.tsv", b"no tab here\n", "text/plain")})
    assert broken.status_code == 400 and "line 1" in broken.json()["error"]["message"]
    assert "voxfarm-upload" not in broken.text, "the message names the upload, not the server's folder"
    for job in (plain.json()["job"], respelled.json()["job"]):
        client.post(f"/v1/jobs/{job}/cancel")


def test_cancel_a_job_and_filter_the_list_by_state(api: ApiServer) -> None:
    client = api.client(api.token("cancellers"))
    body = {"text": LONG_BOOK, "format": "md", "priority": 10}
    submitted = client.post("/v1/jobs", json=body)
    assert submitted.status_code == 201, submitted.text
    job = submitted.json()["job"]

    paused = client.post(f"/v1/jobs/{job}/pause")
    assert paused.status_code == 200 and paused.json()["state"] == "paused"
    assert client.put(f"/v1/jobs/{job}/priority", json={"priority": 40}).json()["priority"] == 40
    above = client.put(f"/v1/jobs/{job}/priority", json={"priority": 80})
    assert above.status_code == 403 and "limit for tenants, 50" in above.json()["error"]["message"]
    assert client.post(f"/v1/jobs/{job}/resume").json()["state"] in ("queued", "rendering")
    cancelled = client.post(f"/v1/jobs/{job}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"

    events = read_events(client, job)
    assert events[-1] == ("end", events[-1][1]) and events[-1][1]["state"] == "cancelled"
    final = wait_for_job(client, job, {"cancelled"})
    assert final["segments_done"] < final["segments_total"]
    assert [j["job"] for j in client.get("/v1/jobs", params={"state": "cancelled"}).json()] == [job]
    assert client.get("/v1/jobs", params={"state": "done"}).json() == []
    again = client.post(f"/v1/jobs/{job}/pause")
    assert again.status_code == 409 and "cancelled" in again.json()["error"]["message"]


def test_a_title_or_a_file_name_names_the_book_and_is_not_read_as_prose(api: ApiServer) -> None:
    client = api.client(api.token("titles"))
    inline = {"text": "Hello world. The sea is calm.", "title": "My Great Novel", "book_format": "none"}
    submitted = client.post("/v1/jobs", json=inline)
    assert submitted.status_code == 201, submitted.text
    detail = client.get(f"/v1/jobs/{submitted.json()['job']}").json()
    assert detail["title"] == "My Great Novel" and [c["title"] for c in detail["chapters"]] == ["My Great Novel"]
    assert detail["segments_total"] == 3, "the chapter title and two sentences; no title line read as prose"
    upload = {"file": ("../Moby Dick.txt", b"Call me Ishmael. Some years ago.", "text/plain")}
    uploaded = client.post("/v1/jobs", files=upload, data={"book_format": "none"})
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["job"].startswith("moby-dick-")
    assert client.get(f"/v1/jobs/{uploaded.json()['job']}").json()["title"] == "Moby Dick"


def test_a_job_name_used_again_shows_the_new_book_s_chapters(api: ApiServer) -> None:
    client = api.client(api.token("renamers"))
    first = client.post("/v1/jobs", json={"text": LONG_BOOK, "format": "md", "job": "reused-name", "priority": 1})
    assert first.status_code == 201, first.text
    job = first.json()["job"]
    assert job.startswith("reused-name-"), "the name given is kept whole, then the tenant's hash"
    client.post(f"/v1/jobs/{job}/pause")
    assert client.get(f"/v1/jobs/{job}").json()["chapters"][0]["title"].startswith("Part")
    live = client.post("/v1/jobs", json={"text": THREE_CHAPTERS, "format": "md", "job": "reused-name"})
    assert live.status_code == 409 and "still paused" in live.json()["error"]["message"]
    client.post(f"/v1/jobs/{job}/cancel")
    second = client.post("/v1/jobs", json={"text": THREE_CHAPTERS, "format": "md", "job": "reused-name"})
    assert second.status_code == 201 and second.json()["job"] == job
    chapters = client.get(f"/v1/jobs/{job}").json()["chapters"]
    assert len(chapters) == second.json()["chapters"] and not any(c["title"].startswith("Part") for c in chapters)


def test_tenants_get_a_priority_limit_and_an_admin_clears_a_quota(api: ApiServer) -> None:
    with api.client(api.token("limits")) as client:
        assert client.get("/v1/me").json()["max_priority"] == 50
        interactive = client.post("/v1/jobs", json={"text": "Hello.", "lane": "interactive"})
        assert interactive.status_code == 403 and "bulk lane" in interactive.json()["error"]["message"]
        assert client.post("/v1/jobs", json={"text": "Hello.", "priority": 90}).status_code == 403
    with api.client(api.token("default", "admin")) as admin:
        assert admin.get("/v1/me").json()["max_priority"] == 100
        assert admin.put("/v1/tenants/quota-lab", json={"quota": 5}).json()["quota"] == 5
        cleared = admin.put("/v1/tenants/quota-lab", json={"quota": 0})
        assert cleared.status_code == 200 and cleared.json()["quota"] is None


@pytest.mark.parametrize(("response_format", "container"), [("wav", "WAV"), ("flac", "FLAC"), ("mp3", "MP3")])
def test_speech_returns_playable_audio_of_the_requested_format(
    api: ApiServer, response_format: str, container: str
) -> None:
    client = api.client(api.token("voice-lab"))
    request = {"model": "tts-1", "input": "The tide comes in at noon.", "voice": "alloy"}
    response = client.post("/v1/audio/speech", json={**request, "response_format": response_format})
    assert response.status_code == 200, response.text
    info = soundfile.info(io.BytesIO(response.content))
    assert info.format == container
    assert info.samplerate > 0 and 0.8 < info.duration < 10
    faster = client.post("/v1/audio/speech", json={**request, "response_format": response_format, "speed": 2.0})
    assert faster.status_code == 200
    assert soundfile.info(io.BytesIO(faster.content)).duration < info.duration
    speech_jobs = [j for j in client.get("/v1/jobs").json() if j["kind"] == "speech"]
    assert speech_jobs and all(j["tenant"] == "voice-lab" and j["lane"] == "interactive" for j in speech_jobs)


def test_metrics_are_labelled_by_route_template_never_by_id(api: ApiServer) -> None:
    client = api.client(api.token("metrics"))
    client.get("/v1/jobs/some-job-that-does-not-exist")
    text = httpx.get(f"{api.url}/metrics").text
    assert 'route="/v1/jobs/{job}"' in text and 'status="404"' in text
    assert "some-job-that-does-not-exist" not in text
    assert "voxfarm_api_request_duration_seconds_bucket" in text
    voices = client.get("/v1/voices").json()
    assert {"id": "en_US-joe-medium", "engine": "piper", "default": True} in voices
    openapi = httpx.get(f"{api.url}/openapi.json").json()
    assert {"/v1/jobs", "/v1/jobs/{job}/events", "/v1/jobs/{job}/files/{name}", "/v1/audio/speech"} <= set(
        openapi["paths"]
    )


def test_a_bootstrap_token_from_a_deployment_secret_signs_in_as_admin(api: ApiServer) -> None:
    token = f"vfk_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"
    for _ in range(2):  # a restarted pod registers the same token again, harmlessly
        second = start_api(api.farm, {"VOXFARM_API_BOOTSTRAP_TOKEN": token})
        with second.client(token) as client:
            me = client.get("/v1/me").json()
            assert me["tenant"] == "default" and me["scopes"] == ["admin"]
            assert client.get("/v1/tenants").status_code == 200
        second.process.stop()
    listed = json.loads(api.farm.cli("tokens", "list", "--json").stdout)
    assert len([t for t in listed if token.startswith(f"vfk_{t['id']}_")]) == 1
    assert token not in api.farm.cli("tokens", "list", "--json").stdout, "only hashes are stored"


def test_the_console_cookie_is_http_only_strict_and_secure_behind_a_tls_proxy(api: ApiServer) -> None:
    token = api.token("cookies", "read")
    https = {"X-Forwarded-Proto": "https"}
    plain = httpx.post(f"{api.url}/v1/session", json={"token": token}, headers=https).headers["set-cookie"]
    assert "HttpOnly" in plain and "SameSite=strict" in plain and "Path=/v1" in plain
    assert "Secure" not in plain, "forwarded headers are ignored unless a proxy is trusted"
    proxied = start_api(api.farm, {"VOXFARM_API_FORWARDED_ALLOW_IPS": "*"})
    try:
        cookie = httpx.post(f"{proxied.url}/v1/session", json={"token": token}, headers=https).headers["set-cookie"]
        assert "Secure" in cookie
    finally:
        proxied.process.stop()


CAST_STORY = (
    "# The Visit\n\n"
    "The rain had stopped when the bell rang at last.\n\n"
    "\u201cCome in,\u201d said Holmes. The visitor shook the water from his coat.\n\n"
    "\u201cI have come a long way,\u201d said the visitor.\n"
)


def test_a_cast_travels_with_the_submission_and_each_line_is_read_by_its_voice(api: ApiServer) -> None:
    for name, extra in (("api-narrator", []), ("api-holmes", ["--length-scale", "0.85"])):
        added = api.farm.cli("voices", "add", name, "--piper", "en_US-joe-medium", *extra)
        assert added.returncode == 0, added.stderr
    client = api.client(api.token("casters"))
    cast = 'narrator = "api-narrator"\ndialogue = "api-narrator"\n\n[characters]\nHolmes = "api-holmes"\n'
    body = {"text": CAST_STORY, "format": "md", "book_format": "none", "cast": cast, "subtitles": "srt"}
    submitted = client.post("/v1/jobs", json=body)
    assert submitted.status_code == 201, submitted.text

    wait_for_job(client, submitted.json()["job"], {"done"})
    manifest = client.get(f"/v1/jobs/{submitted.json()['job']}/manifest").json()
    spoken = {(e["kind"], e["speaker"], e["voice"]) for e in manifest["chapters"][0]["voices"]}
    assert ("quote", "Holmes", "api-holmes") in spoken
    assert {e[2] for e in spoken if e[0] == "narration"} == {"api-narrator"}

    unknown = client.post("/v1/jobs", json={**body, "cast": 'narrator = "nobody-we-know"\n'})
    assert unknown.status_code == 400 and "nobody-we-know" in unknown.json()["error"]["message"]
    assert "voxfarm-upload" not in unknown.text, "the message names the cast, not the server's folder"
    assert len(client.get("/v1/jobs").json()) == 1, "a refused cast queues nothing"


def test_a_large_book_is_accepted_at_once_and_planned_by_the_control_service(api: ApiServer, tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    deferring = start_api(api.farm, {"TMPDIR": str(uploads), "VOXFARM_PLAN_INLINE_CHARS": "0"})
    client = deferring.client(deferring.token("publishers"))
    try:
        submitted = client.post("/v1/jobs", json={"text": THREE_CHAPTERS, "format": "md", "book_format": "none"})
        assert submitted.status_code == 201, submitted.text
        answer = submitted.json()
        assert answer["planning"] is True and answer["segments_total"] == 0 and answer["chapters"] == 3
        early = client.get(f"/v1/jobs/{answer['job']}")
        assert early.status_code == 200 and early.json()["state"] in ("planning", "queued", "rendering", "done")

        done = wait_for_job(client, answer["job"], {"done"})
        assert [c["title"] for c in done["chapters"]] == ["The Storm", "The Ship", "The Morning"]
        assert done["segments_done"] == done["segments_total"] > 0
        other = api.client(api.token("others")).get(f"/v1/jobs/{answer['job']}")
        assert other.status_code == 404, "a job planned by the control service is still its tenant's alone"
    finally:
        deferring.process.stop()


def test_a_token_holds_a_bounded_number_of_event_streams_open(api: ApiServer) -> None:
    client = api.client(api.token("streamers"), timeout=30.0)
    submitted = client.post("/v1/jobs", json={"text": LONG_BOOK, "format": "md", "priority": 1})
    job = submitted.json()["job"]
    client.post(f"/v1/jobs/{job}/pause")  # a job that will not end while its streams are open
    with contextlib.ExitStack() as streams:
        opened = [streams.enter_context(client.stream("GET", f"/v1/jobs/{job}/events")) for _ in range(8)]
        assert all(stream.status_code == 200 for stream in opened)
        with client.stream("GET", f"/v1/jobs/{job}/events") as refused:
            assert refused.status_code == 429, "a ninth stream is refused, not held open"
            assert "8 event streams" in json.loads(refused.read())["error"]["message"]
        opened[0].close()
        deadline = time.monotonic() + 10
        while True:
            with client.stream("GET", f"/v1/jobs/{job}/events") as again:
                if again.status_code == 200:
                    break
            assert time.monotonic() < deadline, "a closed stream gives its place back"
            time.sleep(0.3)
    client.post(f"/v1/jobs/{job}/cancel")
