"""Every process builds its storage from settings in one place, so no S3 setting can be dropped on the way."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import load_settings
from shared.storage import LocalStorage, Storage
from shared.storage.s3 import S3Storage


def test_region_and_endpoint_reach_the_s3_client_through_from_settings() -> None:
    settings = load_settings(
        storage_url="s3://voxfarm-audio/farm", s3_endpoint_url="http://127.0.0.1:8333", s3_region="eu-central-1"
    )

    storage = Storage.from_settings(settings)

    assert isinstance(storage, S3Storage)
    assert storage.url == "s3://voxfarm-audio/farm"
    assert storage._client.meta.region_name == "eu-central-1"
    assert storage._client.meta.endpoint_url == "http://127.0.0.1:8333"


def test_without_a_storage_url_the_local_data_folder_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOXFARM_STORAGE_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))

    storage = Storage.from_settings(load_settings())

    assert isinstance(storage, LocalStorage)
    assert storage.url == (tmp_path / "voxfarm").as_uri()
