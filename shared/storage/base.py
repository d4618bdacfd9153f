"""The storage seam: segments, plans and books live behind this interface.

Paths are relative, '/'-separated and checked here, so no backend can be
talked into writing outside its prefix.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from shared.errors import BadInputError

if TYPE_CHECKING:
    from shared.settings import Settings

_SAFE_PART = re.compile(r"^[A-Za-z0-9._-]+$")


def check_path(path: str) -> str:
    """Reject absolute paths, '..', empty parts and unusual characters."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise BadInputError(f"unsafe storage path {path!r}")
    if not all(_SAFE_PART.match(p) for p in parts):
        raise BadInputError(f"unsafe storage path {path!r}: use letters, digits, '.', '-', '_' and '/'")
    return path


class Storage(ABC):
    """An object store rooted at one prefix."""

    url: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        """The configured store (``VOXFARM_STORAGE_URL``, or the local data folder), with its S3 endpoint and region.

        Every process builds its storage here, so no caller can drop a setting.
        """
        from shared.storage import open_storage

        return open_storage(
            settings.effective_storage_url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region
        )

    @abstractmethod
    def put_bytes(self, path: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Store ``data`` atomically: readers see the old object or the whole new one."""

    def put_many(self, items: Sequence[tuple[str, bytes]], content_type: str = "application/octet-stream") -> None:
        """``put_bytes`` for each (path, data): each object atomic, all of them durable when this returns.

        A worker stores a batch's segments in one call, so a backend can make
        the batch durable once rather than once per object.
        """
        for path, data in items:
            self.put_bytes(path, data, content_type)

    @abstractmethod
    def get_bytes(self, path: str) -> bytes:
        """Read an object; raises NotFoundError when it does not exist."""

    @abstractmethod
    def exists(self, path: str) -> bool: ...

    def exists_many(self, paths: Sequence[str]) -> list[bool]:
        """``exists`` for each path, in order: a worker checks a whole work unit in one call."""
        return [self.exists(path) for path in paths]

    @abstractmethod
    def list(self, prefix: str) -> Iterator[str]:
        """Paths under ``prefix`` (relative to the storage root), in no particular order."""

    @abstractmethod
    def delete(self, path: str) -> None: ...

    def put_file(self, path: str, source: Path, content_type: str = "application/octet-stream") -> None:
        self.put_bytes(path, source.read_bytes(), content_type)

    def get_file(self, path: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.get_bytes(path))

    def size(self, path: str) -> int:
        """An object's length in bytes; raises NotFoundError when it does not exist."""
        return len(self.get_bytes(path))

    def read_range(self, path: str, start: int, end: int, chunk_bytes: int = 256 * 1024) -> Iterator[bytes]:
        """Bytes ``start`` to ``end`` inclusive, in chunks: what an HTTP Range request streams (audio seeking)."""
        data = self.get_bytes(path)[start : end + 1]
        for offset in range(0, len(data), chunk_bytes):
            yield data[offset : offset + chunk_bytes]

    def check(self) -> None:  # noqa: B027 - optional hook, most backends need no check
        """Fail early with a clear StorageError when the store cannot be used."""

    def describe(self) -> str:
        """A printable location without credentials."""
        return self.url
