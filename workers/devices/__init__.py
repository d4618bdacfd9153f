"""Device backends per accelerator family, device specs, and pinned worker processes.

Importing this package imports neither torch nor any vendor runtime, so a
supervisor can parse specs and probe cards before it starts (spawns) the
processes that own them.
"""

from __future__ import annotations

import importlib

from shared.errors import ConfigError
from workers.devices.base import DeviceBackend, DeviceIdentity, MemoryStats, ProbeResult
from workers.devices.spec import FAMILIES, DeviceSpec, parse_device_spec

_BACKENDS = {
    "cpu": ("workers.devices.cpu", "CpuBackend"),
    "cuda": ("workers.devices.cuda", "CudaBackend"),
    "dcu": ("workers.devices.dcu", "DcuBackend"),
    "npu": ("workers.devices.npu", "NpuBackend"),
    "mlu": ("workers.devices.mlu", "MluBackend"),
    "kunlunxin": ("workers.devices.kunlunxin", "KunlunxinBackend"),
}


def backend_class(family: str) -> type[DeviceBackend]:
    """The backend for a family; its module imports no runtime until ``init``."""
    try:
        module, name = _BACKENDS[family]
    except KeyError:
        raise ConfigError(f"unknown device family {family!r}; use one of: {', '.join(FAMILIES)}") from None
    backend: type[DeviceBackend] = getattr(importlib.import_module(module), name)
    return backend


def probe(family: str) -> ProbeResult:
    """How many cards of ``family`` this host has, without initialising anything."""
    return backend_class(family).probe()


def open_device(device: str | DeviceSpec) -> DeviceBackend:
    """Initialise one device (``cuda:3``, ``cpu``...) in this process and return its backend."""
    spec = parse_device_spec(device) if isinstance(device, str) else device
    backend = backend_class(spec.family)(spec.index)
    backend.init()
    return backend


__all__ = [
    "FAMILIES",
    "DeviceBackend",
    "DeviceIdentity",
    "DeviceSpec",
    "MemoryStats",
    "ProbeResult",
    "backend_class",
    "open_device",
    "parse_device_spec",
    "probe",
]
