"""Cambricon MLUs through ``torch_mlu`` (``torch.mlu.*`` mirrors ``torch.cuda.*``).

Written against the documented torch_mlu API; not yet run on an MLU. The
runtime reads ``MLU_VISIBLE_DEVICES``; the probe counts the driver's
``/dev/cambricon_devN`` nodes. Compilation uses Inductor (torch_mlu ships a
Triton backend for it) and falls back to eager where that fails.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

from workers.devices.base import ProbeResult, count_device_nodes, visible_list
from workers.devices.plugin import TorchPluginRuntime


class MluBackend(TorchPluginRuntime):
    family = "mlu"
    torch_type = "mlu"
    visible_devices_env = "MLU_VISIBLE_DEVICES"
    vendor_module = "torch_mlu"
    fatal_messages = ("cnrtErrorNoDevice", "device lost", "mlu unfinished")

    @classmethod
    def probe(cls, root: Path = Path("/"), environ: MutableMapping[str, str] | None = None) -> ProbeResult:
        env = os.environ if environ is None else environ
        found = count_device_nodes(root / "dev", r"cambricon_dev\d+")
        if not found:
            return ProbeResult("mlu", 0, "no Cambricon MLU: no /dev/cambricon_devN nodes")
        visible = visible_list(env.get("MLU_VISIBLE_DEVICES"))
        if visible is not None:
            return ProbeResult("mlu", min(len(visible), found), f"{found} /dev/cambricon_dev*, visible {visible}")
        return ProbeResult("mlu", found, f"{found} /dev/cambricon_dev* nodes")
