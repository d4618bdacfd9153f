"""One HTTP port per worker process: /metrics for Prometheus, /healthz and /readyz for probes.

Readiness turns true only after warm-up, and is also mirrored to a file for
probes that prefer ``test -f``.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class HealthState:
    def __init__(self, ready_file: Path | None = None) -> None:
        self.ready = False
        self.alive = True
        self.ready_file = ready_file
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)

    def set_ready(self, ready: bool) -> None:
        self.ready = ready
        if self.ready_file is not None:
            if ready:
                self.ready_file.parent.mkdir(parents=True, exist_ok=True)
                self.ready_file.write_text("ready\n")
            else:
                self.ready_file.unlink(missing_ok=True)


class HealthServer:
    def __init__(self, host: str, port: int, registry: CollectorRegistry, state: HealthState) -> None:
        self.state = state
        handler = _handler(registry, state)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="voxfarm-health", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(registry: CollectorRegistry, state: HealthState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._send(200 if state.alive else 503, b"ok\n" if state.alive else b"dead\n")
            elif path == "/readyz":
                self._send(200 if state.ready else 503, b"ready\n" if state.ready else b"warming up\n")
            else:
                self._send(404, b"not found\n")

        def _send(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
