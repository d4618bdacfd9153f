"""POST /v1/audio/speech: OpenAI's request shape, rendered on the farm's interactive lane.

The input becomes a one-utterance job (the JSONL path of ingestion, so the
same frontend, keys and safety checks apply) submitted on the interactive
lane, which the dispatcher and the workers serve before book work. Its id
derives from the tenant and the request, so asking again for the same
audio is served from storage at once. ``speed`` maps to the voice's length
scale; OpenAI's preset voice names use the farm's default voice, so
OpenAI clients work unchanged.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from producer.api.auth import Caller, Submitter, farm_of, open_requests
from producer.api.errors import redacted
from producer.api.farm import CONTENT_TYPES, Farm
from producer.api.models import SPEECH_PREFIX, SpeechIn
from producer.planner import default_params
from shared.errors import BadInputError
from shared.ledger import LIVE_STATES, JobState
from shared.voices import VoiceRegistry

router = APIRouter(tags=["speech"])

OPENAI_VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse", "marin", "cedar"}
)
OPENAI_MODELS = frozenset({"tts-1", "tts-1-hd", "gpt-4o-mini-tts", "voxfarm"})
FORMATS = ("mp3", "opus", "flac", "wav")
POLL_S = 0.05


def _length_scale(farm: Farm, voice: str, speed: float) -> float | None:
    if speed == 1.0:
        return None
    try:
        files = VoiceRegistry(farm.settings.voices_dir, farm.operations.storage, farm.settings.effective_cache_dir)
        base = default_params(files.resolve(voice)).length_scale
    except BadInputError:
        base = 1.0  # a Qwen3-TTS voice: its length scale is nominal
    return round(base / speed, 4)


def _submit(farm: Farm, tenant: str, body: SpeechIn) -> str:
    voice = farm.settings.voice if body.voice in OPENAI_VOICES else body.voice
    engine = None if body.model in OPENAI_MODELS else body.model
    folder = Path(tempfile.mkdtemp(prefix="voxfarm-speech-"))
    try:
        source = folder / "speech.jsonl"
        source.write_text(json.dumps({"id": "speech", "text": body.input}) + "\n", encoding="utf-8")
        request_digest = hashlib.sha256(
            json.dumps([tenant, voice, engine, body.response_format, body.speed, body.input]).encode()
        ).hexdigest()[:24]
        job = f"{SPEECH_PREFIX}{request_digest}"
        options: dict[str, object] = {
            "voice": voice,
            "engine": engine,
            "chapters": None,
            "include_matter": False,
            "job": None,
            "no_titles": True,
            "length_scale": _length_scale(farm, voice, body.speed),
            "noise_scale": None,
            "noise_w": None,
            "chapter_format": body.response_format,
            "book_format": "none",
            "loudness": None,
            "true_peak": None,
            "subtitles": "none",
            "lexicon": None,
        }
        try:
            existing = farm.status(tenant, job)
        except BadInputError:
            existing = None
        if existing is not None and existing.state == JobState.PAUSED:
            raise HTTPException(409, f"speech job {job} is paused; resume it (POST /v1/jobs/{job}/resume)")
        if existing is not None and (existing.state == JobState.DONE or existing.state in LIVE_STATES):
            return existing.job  # the same request again (a client's retry): wait for the same job
        result, _ = farm.submit(tenant, source, options, priority=100, lane="interactive", job=job)
        return result.job
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@router.post(
    "/v1/audio/speech",
    summary="OpenAI-compatible text to speech (model, input, voice, response_format, speed)",
    response_class=Response,
    responses={200: {"content": {f"audio/{f}": {} for f in ("mpeg", "ogg", "flac", "wav")}}},
)
async def speech(body: SpeechIn, request: Request, caller: Submitter) -> Response:
    farm = farm_of(request)
    if body.response_format not in FORMATS:
        raise HTTPException(400, f"response_format {body.response_format!r} is not served; use one of {FORMATS}")
    if len(body.input) > farm.settings.api_speech_max_chars:
        raise HTTPException(
            400, f"input is {len(body.input)} characters, over the limit of {farm.settings.api_speech_max_chars}"
        )
    with open_requests(request).held(caller):
        return await _answer(farm, caller, body)


async def _answer(farm: Farm, caller: Caller, body: SpeechIn) -> Response:
    job = await run_in_threadpool(_submit, farm, caller.tenant, body)
    deadline = time.monotonic() + farm.settings.api_speech_timeout_s
    while True:
        status = await run_in_threadpool(farm.status, caller.tenant, job)
        if status.state == JobState.DONE:
            break
        if status.state == JobState.PAUSED:
            raise HTTPException(409, f"speech job {job} was paused; resume it (POST /v1/jobs/{job}/resume)")
        if status.state in (JobState.FAILED, JobState.CANCELLED):
            reasons = "; ".join(redacted(str(f.get("reason", "?"))) for f in list(status.failed.values())[:3])
            raise HTTPException(502, f"speech job {job} {status.state}: {reasons or 'no reason recorded'}")
        if time.monotonic() > deadline:
            raise HTTPException(504, f"no audio within {farm.settings.api_speech_timeout_s:.0f} s; is a worker up?")
        await asyncio.sleep(POLL_S)
    manifest = await run_in_threadpool(farm.manifest, caller.tenant, job)
    name = manifest.chapters[0].file
    audio = await run_in_threadpool(farm.output_bytes, caller.tenant, job, name)
    return Response(audio, media_type=CONTENT_TYPES[body.response_format], headers={"X-Voxfarm-Job": job})
