"""`voxfarm serve`: a whole farm on one machine with the API and console, as a new user starts it."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import soundfile

from producer.embedded import free_port

pytestmark = pytest.mark.timeout(600)


def test_serve_prints_a_url_and_an_admin_token_that_work(tmp_path: Path) -> None:
    port = free_port()
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("VOXFARM_") and not key.startswith("AWS_")
    }
    env.update(XDG_DATA_HOME=str(tmp_path / "data"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    log = (tmp_path / "serve.log").open("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "producer.cli", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        url_line = process.stdout.readline()
        token_line = process.stdout.readline()
        assert url_line.strip() == f"voxfarm console: http://127.0.0.1:{port}/console/", url_line
        token = token_line.split(":", 1)[1].strip()
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"})
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        me = client.get("/v1/me").json()
        assert me["tenant"] == "default" and me["scopes"] == ["admin"]
        assert "<title>voxfarm</title>" in client.get("/console/").text
        speech = client.post(
            "/v1/audio/speech",
            json={"model": "tts-1", "input": "Served on one machine.", "voice": "alloy", "response_format": "wav"},
            timeout=120,
        )
        assert speech.status_code == 200, speech.text
        assert soundfile.info(io.BytesIO(speech.content)).duration > 0.5
    finally:
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(60) in (0, 130, -2), (tmp_path / "serve.log").read_text()[-2000:]
