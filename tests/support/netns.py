"""A second host on this machine: a network namespace joined to the root one by a veth pair.

Cutting the link (``cut``) is a real partition: the process inside keeps
running, its sockets stay open, and its packets go nowhere until ``heal``.
The addresses are on a private /24 that exists only inside this machine.
"""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass, field


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class Host:
    subnet: int = 231
    name: str = field(default_factory=lambda: f"vf{uuid.uuid4().hex[:6]}")

    @property
    def host_side(self) -> str:
        return f"{self.name}h"

    @property
    def inside(self) -> str:
        return f"{self.name}n"

    @property
    def root_address(self) -> str:
        """The root namespace's end of the link: servers for the cut-off host listen here."""
        return f"10.{self.subnet}.0.1"

    @property
    def address(self) -> str:
        return f"10.{self.subnet}.0.2"

    def create(self) -> None:
        _ip("netns", "add", self.name)
        _ip("link", "add", self.host_side, "type", "veth", "peer", "name", self.inside)
        _ip("link", "set", self.inside, "netns", self.name)
        _ip("addr", "add", f"{self.root_address}/24", "dev", self.host_side)
        _ip("link", "set", self.host_side, "up")
        _ip("netns", "exec", self.name, "ip", "addr", "add", f"{self.address}/24", "dev", self.inside)
        _ip("netns", "exec", self.name, "ip", "link", "set", self.inside, "up")
        _ip("netns", "exec", self.name, "ip", "link", "set", "lo", "up")

    def command(self, args: list[str]) -> list[str]:
        """``args`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *args]

    def cut(self) -> None:
        _ip("link", "set", self.host_side, "down")

    def heal(self) -> None:
        _ip("link", "set", self.host_side, "up")

    def destroy(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_side], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], check=False, capture_output=True)
