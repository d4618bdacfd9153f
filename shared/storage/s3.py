"""s3://bucket/prefix storage through plain S3 API calls (AWS, MinIO, SeaweedFS, Ceph RGW, OBS)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from shared.errors import NotFoundError, StorageError
from shared.storage.base import Storage, check_path

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
REQUEST_THREADS = 8
"""Requests in flight at once for ``exists_many`` (HEADs) and ``put_many`` (PUTs)."""


_SESSION_LOCK = threading.Lock()


@functools.cache
def _session() -> boto3.session.Session:
    """One boto3 session for every store of the process, whose responses keep timestamps as text.

    Nothing here reads an object's LastModified, and parsing it (dateutil, once per key of a listing) was
    most of the client's work when submit lists the key shards of a 20,000-segment book. Shared, because a
    session takes a fifth of a second to build; sessions are not thread-safe, so clients are made under a lock.
    """
    core = botocore.session.get_session()
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=str)
    return boto3.session.Session(botocore_session=core)


def _client(**options: Any) -> Any:
    with _SESSION_LOCK:
        return _session().client("s3", **options)


class S3Storage(Storage):
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        client: Any = None,
    ) -> None:
        if len(bucket) < 3:
            raise StorageError(f"S3 bucket name {bucket!r} is too short (at least 3 characters)")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            check_path(self.prefix)
        self.endpoint_url = endpoint_url
        # Starts no thread until a work unit's checks or a batch's writes first use it.
        self._requests = ThreadPoolExecutor(max_workers=REQUEST_THREADS, thread_name_prefix="voxfarm-s3")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client = client or _client(
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(
                retries={"max_attempts": 4, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
                s3={"addressing_style": "path"},
            ),
        )

    def _key(self, path: str) -> str:
        check_path(path)
        return f"{self.prefix}/{path}" if self.prefix else path

    def _fail(self, action: str, path: str, exc: Exception) -> StorageError:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        detail = exc.response["Error"].get("Code", str(exc)) if isinstance(exc, ClientError) else type(exc).__name__
        return StorageError(
            f"S3 {action} {self.url}/{path}{where} failed: {detail}; check the endpoint, bucket and credentials"
        )

    def put_bytes(self, path: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(path), Body=data, ContentType=content_type)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("PUT", path, exc) from exc

    def get_bytes(self, path: str) -> bytes:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(path))
            return bytes(response["Body"].read())
        except ClientError as exc:
            if exc.response["Error"].get("Code") in _NOT_FOUND:
                raise NotFoundError(f"{path} is not in storage {self.url}") from exc
            raise self._fail("GET", path, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("GET", path, exc) from exc

    def _head(self, path: str) -> dict[str, Any]:
        try:
            return dict(self._client.head_object(Bucket=self.bucket, Key=self._key(path)))
        except ClientError as exc:
            if exc.response["Error"].get("Code") in _NOT_FOUND:
                raise NotFoundError(f"{path} is not in storage {self.url}") from exc
            raise self._fail("HEAD", path, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("HEAD", path, exc) from exc

    def exists(self, path: str) -> bool:
        try:
            self._head(path)
        except NotFoundError:
            return False
        return True

    def exists_many(self, paths: Sequence[str]) -> list[bool]:
        """One HEAD per path, several at a time: a work unit's checks cost one round trip, not one per segment."""
        if len(paths) <= 1:
            return [self.exists(path) for path in paths]
        return list(self._requests.map(self.exists, paths))

    def put_many(self, items: Sequence[tuple[str, bytes]], content_type: str = "application/octet-stream") -> None:
        """One PUT per object, several at a time; the first failure is raised once every PUT has ended."""
        if len(items) <= 1:
            super().put_many(items, content_type)
            return
        futures = [self._requests.submit(self.put_bytes, path, data, content_type) for path, data in items]
        errors = [future.exception() for future in futures]
        for error in errors:
            if error is not None:
                raise error

    def size(self, path: str) -> int:
        return int(self._head(path)["ContentLength"])

    def read_range(self, path: str, start: int, end: int, chunk_bytes: int = 256 * 1024) -> Iterator[bytes]:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(path), Range=f"bytes={start}-{end}")
            yield from response["Body"].iter_chunks(chunk_bytes)
        except ClientError as exc:
            if exc.response["Error"].get("Code") in _NOT_FOUND:
                raise NotFoundError(f"{path} is not in storage {self.url}") from exc
            raise self._fail("GET", path, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("GET", path, exc) from exc

    def list(self, prefix: str) -> Iterator[str]:
        full = self._key(prefix.rstrip("/")) + "/" if prefix.strip("/") else (f"{self.prefix}/" if self.prefix else "")
        strip = len(self.prefix) + 1 if self.prefix else 0
        try:
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Contents", []):
                    yield item["Key"][strip:]
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("LIST", prefix, exc) from exc

    def delete(self, path: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(path))
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("DELETE", path, exc) from exc

    def check(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response["Error"].get("Code")
            if code in _NOT_FOUND or code == "NoSuchBucket":
                raise StorageError(
                    f"S3 bucket {self.bucket!r} does not exist at {self.endpoint_url or 'AWS'}; create it first"
                ) from exc
            raise self._fail("HEAD bucket", "", exc) from exc
        except BotoCoreError as exc:
            raise self._fail("HEAD bucket", "", exc) from exc
