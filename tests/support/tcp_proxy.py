"""A TCP proxy on loopback that a test can cut and heal: a network partition between one client and its server.

While the proxy is cut nothing crosses it in either direction and new
connections are accepted but not connected through, as on a network that
drops every packet while TCP keeps retransmitting; healing lets everything
through, late. So a request sent during the partition reaches the server
after it, which is what fencing must survive. ``cut_on(marker)`` starts the
partition the moment a client sends bytes containing ``marker`` (say, the
SHA of a Lua script it runs), before those bytes are forwarded.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class TcpProxy:
    target: tuple[str, int]
    marker: bytes = b""
    """Bytes watched for in what clients send (``crossings`` counts them; ``cut_on`` cuts on them)."""
    crossings: int = 0
    healed: threading.Event = field(default_factory=threading.Event)
    listener: socket.socket = field(init=False)
    _armed: bool = False
    _sockets: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closed: bool = False

    def __post_init__(self) -> None:
        self.healed.set()
        self.listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, name="tcp-proxy-accept", daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    @property
    def is_cut(self) -> bool:
        return not self.healed.is_set()

    def cut_on(self, marker: bytes) -> None:
        """Cut the link as soon as a client sends ``marker``; that send is held with everything else."""
        with self._lock:
            self.marker, self._armed = marker, True

    def cut(self) -> None:
        self.healed.clear()

    def heal(self) -> None:
        self.healed.set()

    def close(self) -> None:
        self._closed = True
        self.healed.set()
        with self._lock:
            for sock in [self.listener, *self._sockets]:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        self.healed.wait()  # a connection opened during the partition gets through only when it heals
        try:
            server = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        with self._lock:
            self._sockets += [client, server]
        threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        tail = b""
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if not data:
                for sock in (sink, source):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                return
            if upstream:
                tail = self._watch(tail + data)
            self.healed.wait()
            try:
                sink.sendall(data)
            except OSError:
                return

    def _watch(self, window: bytes) -> bytes:
        """Count (and, when armed, cut on) the marker; keep the end of the window that may hold part of one."""
        with self._lock:
            if not self.marker:
                return b""
            found = window.count(self.marker)
            self.crossings += found
            if found and self._armed:
                self._armed = False
                self.healed.clear()
            return window[len(window) - len(self.marker) + 1 :]
