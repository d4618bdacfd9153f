"""Device specs as operators write them: ``cpu``, ``cpu:4``, ``cuda:3``, ``npu:all``, ``cuda:0-7``.

Parsing is pure (no probing, no imports) so the pool supervisor can read a
spec before it decides which processes to start. ``all`` stays unresolved
until ``DeviceSpec.expand`` is given the number of cards a probe found.

Rules:

- ``<family>`` alone is card 0 (as in torch); for ``cpu`` it is one worker.
- ``<family>:N`` is card N; ``<family>:A-B`` and ``<family>:A,B,...`` (mixable,
  ``0-3,6``) are several cards, one worker each; ``<family>:all`` is every card.
- ``cpu:N`` is N CPU workers (``cpu:0``, torch's name for the CPU, is one);
  ``cpu:all`` is one worker per usable core.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.errors import ConfigError

#: Device families voxfarm knows, each with its own backend module.
FAMILIES = ("cpu", "cuda", "dcu", "npu", "mlu", "kunlunxin")
_ALIASES = {"klx": "kunlunxin"}
_ITEM = re.compile(r"^(\d+)(?:-(\d+))?$")
#: More cards than any host carries: a typo guard, not a limit of the code.
MAX_INDEX = 1023


@dataclass(frozen=True)
class DeviceSpec:
    """A parsed device spec: a family and which cards (or how many CPU workers)."""

    family: str
    indices: tuple[int, ...] = ()
    """Card indices for accelerators; empty for ``cpu`` and for ``all``."""
    all: bool = False
    workers: int = 1
    """CPU workers; for accelerators one worker per card."""

    def expand(self, available: int | None = None) -> list[DeviceSpec]:
        """One single-worker spec per process to start; ``available`` resolves ``all``."""
        if self.all:
            if available is None:
                raise ConfigError(f"{self}: 'all' needs the number of devices found by a probe")
            if self.family == "cpu":
                return [DeviceSpec("cpu")] * max(available, 1)
            return [DeviceSpec(self.family, (index,)) for index in range(available)]
        if self.family == "cpu":
            return [DeviceSpec("cpu")] * self.workers
        if available is not None:
            missing = [index for index in self.indices if index >= available]
            if missing:
                raise ConfigError(f"{self}: no {self.family} device {missing[0]} (found {available})")
        return [DeviceSpec(self.family, (index,)) for index in self.indices]

    @property
    def index(self) -> int:
        """The one card of a single-device spec (0 for the CPU)."""
        if self.family == "cpu":
            return 0
        if self.all or len(self.indices) != 1:
            raise ConfigError(f"{self} names several devices; start one worker per device")
        return self.indices[0]

    def __str__(self) -> str:
        if self.all:
            return f"{self.family}:all"
        if self.family == "cpu":
            return "cpu" if self.workers == 1 else f"cpu:{self.workers}"
        return f"{self.family}:{','.join(str(i) for i in self.indices)}"


def parse_device_spec(text: str) -> DeviceSpec:
    """Parse an operator's device spec; any mistake is a ConfigError that says what is accepted."""
    raw = text.strip().lower()
    family, colon, rest = raw.partition(":")
    family = _ALIASES.get(family, family)
    if family == "xpu":
        raise ConfigError(
            f"device {text!r} is ambiguous: write 'kunlunxin:N' for Kunlunxin (昆仑芯) XPU cards; "
            "Intel XPUs are not supported"
        )
    if family not in FAMILIES:
        raise ConfigError(f"unknown device family in {text!r}; use one of: {', '.join(FAMILIES)}")
    if colon and not rest:
        raise ConfigError(f"device {text!r} has nothing after ':'")
    if family == "cpu":
        return _parse_cpu(text, rest)
    if not colon:
        return DeviceSpec(family, (0,))
    if rest == "all":
        return DeviceSpec(family, all=True)
    indices: list[int] = []
    for item in rest.split(","):
        match = _ITEM.match(item.strip())
        if match is None:
            raise ConfigError(f"device {text!r}: {item!r} is not N, A-B or all")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise ConfigError(f"device {text!r}: range {item!r} runs backwards")
        indices.extend(range(first, last + 1))
    if max(indices) > MAX_INDEX:
        raise ConfigError(f"device {text!r}: index {max(indices)} is out of range")
    if len(set(indices)) != len(indices):
        raise ConfigError(f"device {text!r} names a device twice")
    return DeviceSpec(family, tuple(indices), workers=len(indices))


def _parse_cpu(text: str, rest: str) -> DeviceSpec:
    if not rest or rest == "0":
        return DeviceSpec("cpu")
    if rest == "all":
        return DeviceSpec("cpu", all=True)
    if not rest.isdigit() or int(rest) > MAX_INDEX:
        raise ConfigError(f"device {text!r}: after 'cpu:' give a worker count or 'all'")
    return DeviceSpec("cpu", workers=int(rest))
