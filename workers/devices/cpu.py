"""The CPU as a device: always present, counted in usable cores, measured through /proc."""

from __future__ import annotations

import os
import platform
import resource
from collections.abc import MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING

from workers.devices.base import DeviceBackend, DeviceIdentity, MemoryStats, ProbeResult

if TYPE_CHECKING:
    import torch


class CpuBackend(DeviceBackend):
    family = "cpu"
    torch_type = "cpu"
    # No visible-devices variable: a CPU worker is sized by its thread count instead.
    # Inductor's CPU code was no faster than eager for Piper here (docs/engines.md), and its first
    # compile costs a minute per shape on two cores: compile only when asked.
    compiles_by_default = False

    @classmethod
    def probe(cls, root: Path = Path("/"), environ: MutableMapping[str, str] | None = None) -> ProbeResult:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return ProbeResult("cpu", cores, f"{cores} usable cores")

    def init(self) -> torch.device:
        import torch

        self.local_index()  # refuses a process pinned to another device
        self._device = torch.device("cpu")
        return self._device

    def memory(self) -> MemoryStats:
        """Host memory: free/total from /proc/meminfo, this process's resident and peak resident size."""
        info = _meminfo()
        resident = None
        try:
            pages = int(Path("/proc/self/statm").read_text().split()[1])
            resident = pages * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            pass
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
        return MemoryStats(info.get("MemAvailable"), info.get("MemTotal"), resident, peak)

    def identity(self) -> DeviceIdentity:
        import torch

        return DeviceIdentity(
            "cpu",
            0,
            cpu_model() or platform.processor() or platform.machine(),
            {"torch": torch.__version__, "threads": str(torch.get_num_threads()), "machine": platform.machine()},
        )

    def supports_dtype(self, dtype: torch.dtype) -> bool:
        import torch

        return dtype in (torch.float32, torch.bfloat16)


def _meminfo() -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                values[name] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    except OSError:
        pass
    return values


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "cpu model")):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return None
