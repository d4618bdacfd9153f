"""Storage backends, chosen by URL scheme: ``s3://bucket/prefix`` or ``file:///dir``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from shared.errors import ConfigError
from shared.storage.base import Storage, check_path
from shared.storage.local import LocalStorage

__all__ = ["LocalStorage", "Storage", "check_path", "open_storage"]


def open_storage(url: str, *, endpoint_url: str | None = None, region: str = "us-east-1") -> Storage:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"storage URL {url!r}: file URLs must be local (file:///dir)")
        return LocalStorage(Path(unquote(parsed.path)))
    if parsed.scheme == "s3":
        from shared.storage.s3 import S3Storage

        if not parsed.netloc:
            raise ConfigError(f"storage URL {url!r}: name a bucket, as in s3://bucket/prefix")
        return S3Storage(parsed.netloc, parsed.path, endpoint_url=endpoint_url, region=region)
    if parsed.scheme == "" and url:
        return LocalStorage(Path(url))
    raise ConfigError(f"storage URL {url!r}: use s3://bucket/prefix or file:///dir")
