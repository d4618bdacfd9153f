"""Huawei Ascend NPUs through ``torch_npu`` (on a CPU build of PyTorch), compiled with TorchAir.

Written against the documented torch_npu API (``torch.npu.*`` mirrors
``torch.cuda.*``) and TorchAir's ``get_npu_backend``; not yet run on an
Ascend card. The runtime reads ``ASCEND_RT_VISIBLE_DEVICES`` when torch_npu
initialises, so ``pin`` refuses once it is imported. The probe counts the
driver's ``/dev/davinciN`` nodes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.errors import DeviceError
from workers.devices.base import DeviceIdentity
from workers.devices.plugin import TorchPluginRuntime

ASCEND_DRIVER_VERSION = Path("/usr/local/Ascend/driver/version.info")


class NpuBackend(TorchPluginRuntime):
    family = "npu"
    torch_type = "npu"
    visible_devices_env = "ASCEND_RT_VISIBLE_DEVICES"
    device_node = "davinci"
    product = "Ascend NPU"
    vendor_module = "torch_npu"
    static_frames = True
    fatal_messages = ("device lost", "aicore exception", "task abort", "heartbeat lost")

    def compile_backend(self) -> str | Callable[..., Any]:
        """TorchAir: graphs go to Ascend's graph engine instead of Inductor/Triton."""
        try:
            torchair = importlib.import_module("torchair")
        except ImportError as exc:
            raise DeviceError(f"compiling on Ascend needs torchair (shipped with torch_npu): {exc}") from exc
        return torchair.get_npu_backend(compiler_config=torchair.CompilerConfig())  # type: ignore[no-any-return]

    def identity(self) -> DeviceIdentity:
        identity = super().identity()
        cann = getattr(getattr(importlib.import_module("torch_npu"), "version", None), "cann", None)
        if cann:
            identity.runtime["cann"] = str(cann)
        try:
            for line in ASCEND_DRIVER_VERSION.read_text().splitlines():
                if line.lower().startswith("version="):
                    identity.runtime["driver"] = line.partition("=")[2].strip()
        except OSError:
            pass
        return identity
