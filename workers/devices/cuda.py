"""NVIDIA GPUs through torch.cuda; the shared torch.cuda calls also serve DCU and Kunlunxin.

The probe counts ``/proc/driver/nvidia/gpus/*`` (one directory per GPU the
driver, or the container runtime, exposes) and never touches NVML or the
CUDA driver API, so a parent process stays fork-safe.
"""

from __future__ import annotations

import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING

from shared.errors import DeviceError
from workers.devices.base import (
    DeviceBackend,
    DeviceIdentity,
    MemoryStats,
    ProbeResult,
    count_device_nodes,
    visible_list,
)

if TYPE_CHECKING:
    import torch

#: CUDA error text meaning the GPU or its context is gone: exit and let the supervisor restart.
CUDA_FATAL: tuple[str, ...] = (
    "illegal memory access",
    "unspecified launch failure",
    "device-side assert",
    "uncorrectable ecc",
    "no cuda-capable device",
    "cuda driver version is insufficient",
    "gpu is lost",
)


class TorchCudaRuntime(DeviceBackend):
    """The torch.cuda calls, for every family whose tensors live on torch's ``cuda`` device."""

    torch_type = "cuda"
    fatal_messages = CUDA_FATAL

    @classmethod
    def _refuse_if_runtime_loaded(cls) -> None:
        super()._refuse_if_runtime_loaded()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():
            raise DeviceError("pin() must run before CUDA is initialised in this process; start it with spawn")

    def _open_cuda(self) -> torch.device:
        import torch

        local = self.local_index()
        with self.errors("initialisation"):
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if local >= count:
            raise DeviceError(
                f"{self.family}:{self.index} is not available: the runtime sees {count} device(s)"
                + (f" with {self.visible_devices_env} set" if self.visible_devices_env else "")
            )
        with self.errors("initialisation"):
            torch.cuda.set_device(local)
        self._device = torch.device("cuda", local)
        return self._device

    def synchronize(self) -> None:
        import torch

        with self.errors("synchronize"):
            torch.cuda.synchronize(self.device)

    def memory(self) -> MemoryStats:
        import torch

        free, total = torch.cuda.mem_get_info(self.device)
        return MemoryStats(
            int(free),
            int(total),
            torch.cuda.memory_allocated(self.device),
            torch.cuda.max_memory_allocated(self.device),
            torch.cuda.memory_reserved(self.device),
        )

    def reset_peak_memory(self) -> None:
        import torch

        torch.cuda.reset_peak_memory_stats(self.device)

    def supports_dtype(self, dtype: torch.dtype) -> bool:
        import torch

        if dtype == torch.bfloat16:
            return bool(torch.cuda.is_bf16_supported())
        return dtype in (torch.float32, torch.float16)


class CudaBackend(TorchCudaRuntime):
    family = "cuda"
    visible_devices_env = "CUDA_VISIBLE_DEVICES"

    @classmethod
    def probe(cls, root: Path = Path("/"), environ: MutableMapping[str, str] | None = None) -> ProbeResult:
        import os

        env = os.environ if environ is None else environ
        gpus = root / "proc/driver/nvidia/gpus"
        found = count_device_nodes(gpus, r"[0-9a-fA-F:.]+")
        source = str(gpus)
        if not found:
            found = count_device_nodes(root / "dev", r"nvidia\d+")
            source = f"{root / 'dev'}/nvidia*"
        if not found:
            return ProbeResult("cuda", 0, "no NVIDIA GPU: no /proc/driver/nvidia/gpus entries or /dev/nvidia* nodes")
        visible = visible_list(env.get("CUDA_VISIBLE_DEVICES"))
        if visible is not None:
            usable = [item for item in visible if item != "-1"]
            return ProbeResult("cuda", min(len(usable), found), f"{found} in {source}, CUDA_VISIBLE_DEVICES={visible}")
        return ProbeResult("cuda", found, f"{found} in {source}")

    def init(self) -> torch.device:
        import torch

        if getattr(torch.version, "hip", None):
            raise DeviceError("this PyTorch is a HIP (ROCm/DTK) build: open the card as dcu:N")
        if torch.version.cuda is None:
            raise DeviceError(f"this PyTorch ({torch.__version__}) was built without CUDA; install a CUDA build")
        return self._open_cuda()

    def identity(self) -> DeviceIdentity:
        import torch

        runtime = {"torch": torch.__version__, "cuda": str(torch.version.cuda)}
        cudnn = torch.backends.cudnn.version()
        if cudnn:
            runtime["cudnn"] = str(cudnn)
        driver = _nvidia_driver_version()
        if driver:
            runtime["driver"] = driver
        major, minor = torch.cuda.get_device_capability(self.device)
        runtime["capability"] = f"{major}.{minor}"
        return DeviceIdentity("cuda", self.index, torch.cuda.get_device_name(self.device), runtime)


def _nvidia_driver_version(root: Path = Path("/")) -> str | None:
    try:
        text = (root / "proc/driver/nvidia/version").read_text()
    except OSError:
        return None
    for word in text.split():
        if word.count(".") >= 1 and word.replace(".", "").isdigit():
            return word
    return None
