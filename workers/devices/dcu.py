"""Hygon DCU: a HIP (ROCm/DTK) build of PyTorch, whose device type is still ``cuda``.

``torch.version.hip`` is set on these builds; the runtime reads
``HIP_VISIBLE_DEVICES``. The probe reads the KFD topology that the amdgpu /
hydcu kernel driver publishes under /sys (GPU nodes have a non-zero
``simd_count``), which needs no runtime at all.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING

from shared.errors import DeviceError
from workers.devices.base import DeviceIdentity, ProbeResult, visible_list
from workers.devices.cuda import TorchCudaRuntime

if TYPE_CHECKING:
    import torch

_SIMD = re.compile(r"^simd_count\s+(\d+)$", re.M)


class DcuBackend(TorchCudaRuntime):
    family = "dcu"
    visible_devices_env = "HIP_VISIBLE_DEVICES"
    fatal_messages = (*TorchCudaRuntime.fatal_messages, "hipErrorNoDevice", "hsa_status_error", "memory access fault")

    @classmethod
    def probe(cls, root: Path = Path("/"), environ: MutableMapping[str, str] | None = None) -> ProbeResult:
        env = os.environ if environ is None else environ
        nodes = root / "sys/class/kfd/kfd/topology/nodes"
        found = 0
        try:
            for node in nodes.iterdir():
                match = _SIMD.search((node / "properties").read_text())
                found += bool(match and int(match.group(1)) > 0)
        except OSError:
            return ProbeResult("dcu", 0, f"no DCU: {nodes} is missing (no KFD driver)")
        visible = visible_list(env.get("HIP_VISIBLE_DEVICES"))
        if visible is not None:
            return ProbeResult("dcu", min(len(visible), found), f"{found} KFD GPU nodes, HIP_VISIBLE_DEVICES={visible}")
        return ProbeResult("dcu", found, f"{found} KFD GPU nodes in {nodes}")

    def init(self) -> torch.device:
        import torch

        if not getattr(torch.version, "hip", None):
            raise DeviceError(
                f"dcu:{self.index} needs a HIP (DTK/ROCm) build of PyTorch; this one ({torch.__version__}) is not"
            )
        return self._open_cuda()

    def identity(self) -> DeviceIdentity:
        import torch

        runtime = {"torch": torch.__version__, "hip": str(torch.version.hip)}
        dtk = os.environ.get("ROCM_PATH") or os.environ.get("DTK_HOME")
        if dtk:
            with contextlib.suppress(OSError):
                runtime["dtk"] = (Path(dtk) / ".info/version").read_text().strip()
        return DeviceIdentity("dcu", self.index, torch.cuda.get_device_name(self.device), runtime)
