"""Names that end up in keys, queue names and paths, checked in one place.

Job ids and voice ids travel through Redis keys, queue names and storage
paths, so they are restricted to a safe alphabet: no ``/``, no ``..``, no
shell metacharacters, bounded length.
"""

from __future__ import annotations

import re
import unicodedata

from shared.errors import BadInputError

_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$")
_VOICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$")
_ENGINE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_KEY = re.compile(r"^[0-9a-f]{64}$")
_TENANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")

JOB_ID_PATTERN = _JOB_ID.pattern
VOICE_ID_PATTERN = _VOICE_ID.pattern
ENGINE_ID_PATTERN = _ENGINE_ID.pattern
KEY_PATTERN = _KEY.pattern


def check_job_id(value: str) -> str:
    if not _JOB_ID.fullmatch(value):
        raise BadInputError(
            f"invalid job id {value!r}: use 1-80 letters, digits, '-' or '_', starting with a letter or digit"
        )
    return value


def check_voice_id(value: str) -> str:
    if not _VOICE_ID.fullmatch(value):
        raise BadInputError(f"invalid voice id {value!r}: use letters, digits, '-' or '_' (e.g. en_US-joe-medium)")
    return value


def check_engine_id(value: str) -> str:
    if not _ENGINE_ID.fullmatch(value):
        raise BadInputError(f"invalid engine id {value!r}: use lowercase letters, digits and '-'")
    return value


def check_tenant(value: str) -> str:
    """Tenants name metric labels and Redis hash fields: a short lowercase alphabet."""
    if not _TENANT.fullmatch(value):
        raise BadInputError(
            f"invalid tenant {value!r}: use 1-40 lowercase letters, digits, '-' or '_', starting with a letter or digit"
        )
    return value


def check_key(value: str) -> str:
    if not _KEY.fullmatch(value):
        raise BadInputError(f"invalid content key {value!r}: expected 64 lowercase hex digits")
    return value


def slugify(text: str, max_len: int = 40) -> str:
    """A readable, safe fragment of a title for job ids and file names."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", ascii_text).strip("-").lower()
    return slug[:max_len].strip("-") or "untitled"
