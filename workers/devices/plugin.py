"""Vendor plugins that add a ``torch.<type>`` module mirroring ``torch.cuda`` (torch_npu, torch_mlu).

Importing the plugin registers the device type and its runtime module;
everything after that is the same handful of documented calls, so the
families differ only in names, probes and how they compile.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from shared.errors import DeviceError
from workers.devices.base import DeviceBackend, DeviceIdentity, MemoryStats

if TYPE_CHECKING:
    import torch


class TorchPluginRuntime(DeviceBackend):
    """``torch.<torch_type>`` after ``import <vendor_module>``."""

    def runtime(self) -> Any:
        import torch

        module = getattr(torch, self.torch_type, None)
        if module is None:
            raise DeviceError(f"torch.{self.torch_type} is missing: {self.vendor_module} did not register it")
        return module

    def init(self) -> torch.device:
        import torch

        assert self.vendor_module is not None
        try:
            importlib.import_module(self.vendor_module)
        except ImportError as exc:
            raise DeviceError(f"{self.family}:{self.index} needs {self.vendor_module} installed: {exc}") from exc
        local = self.local_index()
        runtime = self.runtime()
        with self.errors("initialisation"):
            count = int(runtime.device_count()) if runtime.is_available() else 0
        if local >= count:
            raise DeviceError(
                f"{self.family}:{self.index} is not available: {self.vendor_module} sees {count} device(s)"
            )
        with self.errors("initialisation"):
            runtime.set_device(local)
        self._device = torch.device(self.torch_type, local)
        return self._device

    def synchronize(self) -> None:
        with self.errors("synchronize"):
            self.runtime().synchronize(self.device)

    def memory(self) -> MemoryStats:
        runtime = self.runtime()
        free, total = runtime.mem_get_info(self.device)
        allocated = int(runtime.memory_allocated(self.device))
        reserved = getattr(runtime, "memory_reserved", None)
        return MemoryStats(
            int(free),
            int(total),
            allocated,
            int(runtime.max_memory_allocated(self.device)),
            int(reserved(self.device)) if reserved is not None else None,
        )

    def reset_peak_memory(self) -> None:
        self.runtime().reset_peak_memory_stats(self.device)

    def supports_dtype(self, dtype: torch.dtype) -> bool:
        import torch

        if dtype == torch.bfloat16:
            check = getattr(self.runtime(), "is_bf16_supported", None)
            return bool(check()) if callable(check) else False
        return dtype in (torch.float32, torch.float16)

    def identity(self) -> DeviceIdentity:
        import torch

        assert self.vendor_module is not None
        plugin = importlib.import_module(self.vendor_module)
        runtime = {"torch": torch.__version__, self.vendor_module: str(getattr(plugin, "__version__", "unknown"))}
        name = str(self.runtime().get_device_name(self.device.index or 0))
        return DeviceIdentity(self.family, self.index, name, runtime)
