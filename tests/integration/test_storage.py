"""Both storage backends against the real thing: a local folder and a SeaweedFS S3 server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.errors import BadInputError, NotFoundError, StorageError
from shared.storage import Storage, open_storage
from tests.support.services import SeaweedS3


@pytest.fixture(params=["file", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "file":
        yield open_storage((tmp_path / "store").as_uri())
        return
    server: SeaweedS3 = request.getfixturevalue("s3_server")
    bucket = server.new_bucket()
    yield open_storage(f"s3://{bucket}/prefix/deep", endpoint_url=server.endpoint)


def test_put_get_exists_list_delete_round_trip(storage: Storage) -> None:
    storage.check()
    storage.put_bytes("segments/v/ab/abc.flac", b"audio")
    storage.put_bytes("jobs/j1/plan.json", b"{}")

    assert storage.get_bytes("segments/v/ab/abc.flac") == b"audio"
    assert storage.exists("jobs/j1/plan.json")
    assert not storage.exists("jobs/j1/missing.json")
    assert sorted(storage.list("segments")) == ["segments/v/ab/abc.flac"]
    assert sorted(storage.list("")) == ["jobs/j1/plan.json", "segments/v/ab/abc.flac"]

    storage.delete("jobs/j1/plan.json")
    assert not storage.exists("jobs/j1/plan.json")


def test_overwriting_replaces_the_whole_object(storage: Storage) -> None:
    storage.put_bytes("a/b", b"first version")
    storage.put_bytes("a/b", b"2nd")
    assert storage.get_bytes("a/b") == b"2nd"


def test_files_round_trip(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(bytes(range(256)) * 1000)
    storage.put_file("books/x/in.bin", source)
    storage.get_file("books/x/in.bin", tmp_path / "out" / "copy.bin")
    assert (tmp_path / "out" / "copy.bin").read_bytes() == source.read_bytes()


def test_size_and_byte_ranges_read_only_what_is_asked(storage: Storage) -> None:
    data = bytes(range(256)) * 4000
    storage.put_bytes("jobs/j1/001-chapter.flac", data)

    assert storage.size("jobs/j1/001-chapter.flac") == len(data)
    assert b"".join(storage.read_range("jobs/j1/001-chapter.flac", 0, 99)) == data[:100]
    assert b"".join(storage.read_range("jobs/j1/001-chapter.flac", 500_000, len(data) - 1)) == data[500_000:]
    chunks = list(storage.read_range("jobs/j1/001-chapter.flac", 10, 700_009, chunk_bytes=65536))
    assert b"".join(chunks) == data[10:700_010] and max(map(len, chunks)) <= 65536
    with pytest.raises(NotFoundError):
        storage.size("jobs/j1/missing.flac")
    with pytest.raises(NotFoundError):
        list(storage.read_range("jobs/j1/missing.flac", 0, 9))


def test_a_batch_is_stored_whole_and_checked_in_one_call(storage: Storage) -> None:
    items = [(f"segments/v/{i % 3:02x}/seg{i}.flac", f"audio {i}".encode() * (i + 1)) for i in range(20)]
    storage.put_bytes(items[0][0], b"an older take")

    storage.put_many(items, "audio/flac")

    assert [storage.get_bytes(path) for path, _ in items] == [data for _, data in items]
    assert storage.exists_many([path for path, _ in items] + ["segments/v/00/missing.flac"]) == [True] * 20 + [False]
    assert sorted(storage.list("segments")) == sorted(path for path, _ in items)  # no temporary file is left


def test_a_batch_with_an_unsafe_path_is_refused_and_leaves_nothing_half_written(storage: Storage) -> None:
    items = [("segments/v/00/good.flac", b"good"), ("segments/../escape.flac", b"bad")]
    with pytest.raises(BadInputError):
        storage.put_many(items, "audio/flac")
    assert list(storage.list("")) in ([], ["segments/v/00/good.flac"])  # S3 may have stored the good one


def test_missing_object_is_not_found(storage: Storage) -> None:
    with pytest.raises(NotFoundError):
        storage.get_bytes("nothing/here")


@pytest.mark.parametrize("path", ["../escape", "/abs/path", "a/../../b", "a//b", "a/./b", "a/b c", "a\\b", ""])
def test_paths_outside_the_prefix_are_refused(storage: Storage, path: str) -> None:
    with pytest.raises(BadInputError):
        storage.put_bytes(path, b"x")


def test_a_missing_bucket_is_a_clear_storage_error(s3_server: SeaweedS3) -> None:
    storage = open_storage("s3://no-such-bucket-here/p", endpoint_url=s3_server.endpoint)
    with pytest.raises(StorageError, match="does not exist"):
        storage.check()


def test_an_unreachable_endpoint_is_a_storage_error() -> None:
    from tests.support.services import free_port_pair

    storage = open_storage("s3://bucket/p", endpoint_url=f"http://127.0.0.1:{free_port_pair()}")
    with pytest.raises(StorageError, match="check the endpoint"):
        storage.check()


def test_existence_by_head_and_by_shard_listing_agree(s3_server: SeaweedS3) -> None:
    """Submit checks a few keys with HEADs and many keys by listing their shards: both give the same answer."""
    import hashlib

    from producer.submit import stored_keys
    from shared.keys import segment_path

    storage = open_storage(f"s3://{s3_server.new_bucket()}/farm", endpoint_url=s3_server.endpoint)
    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(60)]
    present = set(keys[::3])
    for key in present:
        storage.put_bytes(segment_path("en_US-joe-medium", key), b"flac")
    storage.put_bytes(segment_path("other-voice", keys[1]), b"flac")  # another voice's segment is not ours

    by_head = stored_keys(storage, "en_US-joe-medium", keys, list_threshold=10_000)
    by_listing = stored_keys(storage, "en_US-joe-medium", keys, list_threshold=10)
    assert by_head == by_listing == present


def test_qwen_voice_commands_open_the_store_with_the_configured_region(s3_server: SeaweedS3) -> None:
    from producer.qwen_voices import optional_storage
    from shared.settings import load_settings
    from shared.storage.s3 import S3Storage

    settings = load_settings(
        storage_url=f"s3://{s3_server.new_bucket()}/farm", s3_endpoint_url=s3_server.endpoint, s3_region="eu-central-1"
    )

    storage = optional_storage(settings, None)

    assert isinstance(storage, S3Storage)
    assert storage._client.meta.region_name == "eu-central-1"
    assert storage._client.meta.endpoint_url == s3_server.endpoint
