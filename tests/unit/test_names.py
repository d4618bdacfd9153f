"""Names that become Redis keys, queue names and paths: a strict alphabet, the whole string checked."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shared.errors import BadInputError
from shared.names import check_engine_id, check_job_id, check_key, check_tenant, check_voice_id

CHECKS: dict[str, tuple[Callable[[str], str], str]] = {
    "job": (check_job_id, "book-1"),
    "voice": (check_voice_id, "en_US-joe-medium"),
    "engine": (check_engine_id, "piper-onnx"),
    "tenant": (check_tenant, "acme"),
    "key": (check_key, "ab" * 32),
}
HOSTILE = ("{}\n", "{}\n\n", "\n{}", "{}/..", "../{}", "{} ", "{}\x00", "{};rm", "")


@pytest.mark.parametrize("kind", list(CHECKS))
@pytest.mark.parametrize("shape", HOSTILE)
def test_a_name_with_anything_around_it_is_refused(kind: str, shape: str) -> None:
    check, good = CHECKS[kind]
    assert check(good) == good
    with pytest.raises(BadInputError):
        check(shape.format(good))
