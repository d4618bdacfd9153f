"""Device backends per accelerator family, device specs, and pinned worker processes.

Importing this package imports neither torch nor any vendor runtime, so a
supervisor can parse specs and probe cards before it starts (spawns) the
processes that own them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

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


@dataclass(frozen=True)
class OpenedDevice:
    """One card opened in this process: its backend (initialised where torch runs) and how to name it."""

    family: str
    card: str
    name: str
    versions: dict[str, str]
    backend: DeviceBackend
    """What engines run on; its runtime is not initialised for a CPU worker that needs no torch."""


def open_device(device: str | DeviceSpec, *, needs_torch: bool = True, pin: bool = False) -> OpenedDevice:
    """Open one card (``cuda:3``, ``cpu``...): initialise its runtime and check it computes correctly.

    ``pin`` first makes the card the only one this process's runtime will
    see, which must happen before any vendor runtime is imported (a worker
    process). A CPU opened for an engine that needs no torch (onnxruntime)
    never imports torch: it only needs the host's identity and memory figures.
    """
    spec = parse_device_spec(device) if isinstance(device, str) else device
    backend_type = backend_class(spec.family)
    if pin:
        backend_type.pin(spec.index)
    backend = backend_type(spec.index)
    if spec.family == "cpu" and not needs_torch:
        import platform

        from workers.devices.cpu import cpu_model

        name = cpu_model() or platform.machine()
        return OpenedDevice("cpu", "0", name, {"machine": platform.machine()}, backend)
    backend.init()
    backend.smoke_test()
    identity = backend.identity()
    return OpenedDevice(spec.family, str(spec.index), identity.name, dict(identity.runtime), backend)


__all__ = [
    "FAMILIES",
    "DeviceBackend",
    "DeviceIdentity",
    "DeviceSpec",
    "MemoryStats",
    "OpenedDevice",
    "ProbeResult",
    "backend_class",
    "open_device",
    "parse_device_spec",
    "probe",
]
