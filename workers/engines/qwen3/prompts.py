"""Clone prompts, computed once per cluster and reused by every worker.

A voice_clone segment needs its voice's prompt: the speech codes of the
reference recording and its speaker embedding. Computing it runs the
checkpoint's speech-tokenizer encoder and speaker encoder over the
reference, so it is done once: the first worker that needs a prompt takes a
short Redis lock, computes it, and stores it in storage under its content
key (``voices/prompts/<key>.npz``); every other worker, now or after a
restart, loads it from there. Prompts are plain arrays in an ``.npz`` (never
pickles), read with ``allow_pickle=False``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.errors import NotFoundError
from shared.qwen.voices import prompt_path
from shared.redis_keys import prompt_lock_key
from shared.storage import Storage

log = logging.getLogger(__name__)

LOCK_TTL_S = 300
"""A lock outlives a worker that died while computing; then another worker computes the prompt."""
MEMORY_ITEMS = 256


@dataclass(frozen=True)
class ClonePrompt:
    """What a Base checkpoint needs of a cloned voice."""

    ref_code: np.ndarray | None
    """Speech codes of the reference (frames x codebooks); None in x-vector-only mode (no transcript)."""
    speaker_embedding: np.ndarray
    ref_text: str | None
    computed_by: str = ""

    def to_npz(self) -> bytes:
        meta = {"ref_text": self.ref_text, "computed_by": self.computed_by, "v": 1}
        arrays: dict[str, Any] = {
            "speaker_embedding": self.speaker_embedding.astype(np.float32),
            "meta": np.array(json.dumps(meta, ensure_ascii=False)),
        }
        if self.ref_code is not None:
            arrays["ref_code"] = self.ref_code.astype(np.int64)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_npz(cls, data: bytes) -> ClonePrompt:
        with np.load(io.BytesIO(data), allow_pickle=False) as loaded:
            meta = json.loads(str(loaded["meta"]))
            ref_code = loaded["ref_code"] if "ref_code" in loaded.files else None
            return cls(ref_code, loaded["speaker_embedding"], meta.get("ref_text"), str(meta.get("computed_by", "")))


class PromptStore:
    """Clone prompts by key: from memory, from storage, or computed here under a cluster-wide lock."""

    def __init__(
        self, storage: Storage, redis: Any = None, owner: str = "", *, wait_s: float = 120.0, poll_s: float = 0.2
    ) -> None:
        self.storage = storage
        self.redis = redis
        self.owner = owner
        self.wait_s = wait_s
        self.poll_s = poll_s
        self._memory: OrderedDict[str, ClonePrompt] = OrderedDict()
        self._lock = threading.Lock()
        self.computed = 0
        self.loaded = 0

    def get(self, key: str, compute: Callable[[], ClonePrompt]) -> ClonePrompt:
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return self._memory[key]
        prompt = self._load(key)
        if prompt is None:
            prompt = self._compute_once(key, compute)
        else:
            self.loaded += 1
            log.info("clone prompt %s loaded from storage (computed by %s)", key[:12], prompt.computed_by or "?")
        with self._lock:
            self._memory[key] = prompt
            while len(self._memory) > MEMORY_ITEMS:
                self._memory.popitem(last=False)
        return prompt

    def reference_audio(self, path: str) -> bytes:
        try:
            return self.storage.get_bytes(path)
        except NotFoundError as exc:
            raise NotFoundError(
                f"reference audio {path} of a cloned voice is not in storage; add the voice again"
            ) from exc

    def _load(self, key: str) -> ClonePrompt | None:
        try:
            return ClonePrompt.from_npz(self.storage.get_bytes(prompt_path(key)))
        except NotFoundError:
            return None
        except (ValueError, KeyError, OSError) as exc:
            log.warning("ignoring an unreadable clone prompt %s: %s", key[:12], exc)
            return None

    def _compute_once(self, key: str, compute: Callable[[], ClonePrompt]) -> ClonePrompt:
        lock = prompt_lock_key(key)
        deadline = time.monotonic() + self.wait_s
        forced = False
        while True:
            if forced or self._acquire(lock):
                try:
                    found = self._load(key)  # finished by another worker while we waited for the lock
                    if found is not None:
                        self.loaded += 1
                        log.info("clone prompt %s loaded from storage after another worker computed it", key[:12])
                        return found
                    started = time.perf_counter()
                    prompt = compute()
                    prompt = ClonePrompt(prompt.ref_code, prompt.speaker_embedding, prompt.ref_text, self.owner)
                    self.storage.put_bytes(prompt_path(key), prompt.to_npz(), "application/octet-stream")
                    self.computed += 1
                    log.info(
                        "clone prompt %s computed in %.2fs and stored for every worker",
                        key[:12],
                        time.perf_counter() - started,
                    )
                    return prompt
                finally:
                    if not forced:
                        self._release(lock)
            found = self._load(key)
            if found is not None:
                self.loaded += 1
                log.info("clone prompt %s loaded from storage after another worker computed it", key[:12])
                return found
            if time.monotonic() > deadline:
                log.warning("clone prompt %s: locked for over %.0fs; computing it here", key[:12], self.wait_s)
                forced = True
                continue
            time.sleep(self.poll_s)

    def _acquire(self, lock: str) -> bool:
        if self.redis is None:
            return True
        try:
            return bool(self.redis.set(lock, self.owner or "worker", nx=True, ex=LOCK_TTL_S))
        except Exception:  # noqa: BLE001 - without Redis the prompt is computed here; it is idempotent
            return True

    def _release(self, lock: str) -> None:
        if self.redis is None:
            return
        with contextlib.suppress(Exception):  # the lock expires by itself
            self.redis.delete(lock)
