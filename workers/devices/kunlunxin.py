"""Kunlunxin (昆仑芯) XPUs through Baidu's ``torch_xmlir`` plugin; never Intel's ``torch.xpu``.

The plugin has shipped in two shapes, and both are handled:

- Recent releases (the P800 / KL3 ``xpytorch`` builds): a CUDA-compatible
  mode. After ``import torch_xmlir`` the cards are driven through
  ``torch.cuda`` and tensors live on ``cuda:N``; memory figures come from
  the ordinary ``torch.cuda`` allocator.
- Older releases: a private ``xpu`` device type driven through
  ``torch_xmlir.xpu`` (device_count, set_device, synchronize). Its memory
  statistics are not usable, so only free/total are reported when the
  plugin exposes them.

In both, ``torch.xpu`` is upstream's Intel GPU module (a stub that reports 0
devices on these hosts) and is never called. ``XPU_VISIBLE_DEVICES`` selects
the physical card; ``CUDA_VISIBLE_DEVICES`` is set to "0" beside it so the
CUDA-compatible layer, which counts within the visible XPUs, agrees. The
probe counts ``/dev/xpuN`` nodes (``/dev/xpuctrl`` is the control node).
Written against published deployment notes; not yet run on a Kunlunxin card.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.errors import DeviceError
from workers.devices.base import DeviceIdentity, MemoryStats
from workers.devices.cuda import TorchCudaRuntime

if TYPE_CHECKING:
    import torch

KUNLUN_DRIVER_VERSION = Path("/proc/kunlun/version")


class KunlunxinBackend(TorchCudaRuntime):
    family = "kunlunxin"
    visible_devices_env = "XPU_VISIBLE_DEVICES"
    device_node = "xpu"
    product = "Kunlunxin XPU"
    vendor_module = "torch_xmlir"
    # The vendor's own serving stack runs eager: Inductor needs Kunlunxin's Triton build.
    compiles_by_default = False
    fatal_messages = (*TorchCudaRuntime.fatal_messages, "xpu_wait", "XPUAPI_ERROR", "device lost")

    def __init__(self, index: int = 0) -> None:
        super().__init__(index)
        self.mode: str | None = None
        """``cuda`` (CUDA-compatible plugin) or ``xpu`` (private device) once initialised."""

    @classmethod
    def pin(cls, index: int, environ: MutableMapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        super().pin(index, env)
        env["CUDA_VISIBLE_DEVICES"] = "0"

    def init(self) -> torch.device:
        import torch

        try:
            plugin = importlib.import_module("torch_xmlir")
        except ImportError as exc:
            raise DeviceError(f"kunlunxin:{self.index} needs Kunlunxin's torch_xmlir plugin: {exc}") from exc
        if torch.cuda.is_available():
            self.mode = "cuda"
            return self._open_cuda()
        xpu = getattr(plugin, "xpu", None)
        if xpu is None or not xpu.is_available():
            raise DeviceError(f"kunlunxin:{self.index}: torch_xmlir loaded but reports no XPU (driver or card missing)")
        self.mode = "xpu"
        local = self.local_index()
        count = int(xpu.device_count())
        if local >= count:
            raise DeviceError(f"kunlunxin:{self.index} is not available: torch_xmlir sees {count} XPU(s)")
        with self.errors("initialisation"):
            xpu.set_device(local)
        # torch's built-in "xpu" device *type*, dispatched to torch_xmlir's kernels.
        self._device = torch.device("xpu", local)
        return self._device

    def _plugin_xpu(self) -> Any:
        return importlib.import_module("torch_xmlir").xpu

    def synchronize(self) -> None:
        if self.mode == "xpu":
            with self.errors("synchronize"):
                self._plugin_xpu().synchronize()
        else:
            super().synchronize()

    def memory(self) -> MemoryStats:
        if self.mode != "xpu":
            return super().memory()
        try:
            model = importlib.import_module("torch_xmlir.core.xpu_model")
            info = model.get_memory_info(str(self.device))
            return MemoryStats(int(info["kb_free"]) * 1024, int(info["kb_total"]) * 1024, None, None)
        except Exception:  # noqa: BLE001 - figures are optional; the plugin's memory API varies by release
            return MemoryStats(None, None, None, None)

    def reset_peak_memory(self) -> None:
        if self.mode != "xpu":
            super().reset_peak_memory()

    def supports_dtype(self, dtype: torch.dtype) -> bool:
        import torch

        if self.mode == "xpu":
            return dtype in (torch.float32, torch.float16)
        return dtype in (torch.float32, torch.float16, torch.bfloat16)

    def identity(self) -> DeviceIdentity:
        import torch

        plugin = importlib.import_module("torch_xmlir")
        runtime = {
            "torch": torch.__version__,
            "torch_xmlir": str(getattr(plugin, "__version__", "unknown")),
            "mode": str(self.mode),
        }
        with contextlib.suppress(OSError, IndexError):
            runtime["driver"] = KUNLUN_DRIVER_VERSION.read_text().strip().splitlines()[0]
        if self.mode == "xpu":
            name = str(self._plugin_xpu().get_device_name(self.device.index or 0))
        else:
            name = torch.cuda.get_device_name(self.device)
        return DeviceIdentity("kunlunxin", self.index, name, runtime)
