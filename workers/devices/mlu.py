"""Cambricon MLUs through ``torch_mlu`` (``torch.mlu.*`` mirrors ``torch.cuda.*``).

Written against the documented torch_mlu API; not yet run on an MLU. The
runtime reads ``MLU_VISIBLE_DEVICES``; the probe counts the driver's
``/dev/cambricon_devN`` nodes. Compilation uses Inductor (torch_mlu ships a
Triton backend for it) and falls back to eager where that fails.
"""

from __future__ import annotations

from workers.devices.plugin import TorchPluginRuntime


class MluBackend(TorchPluginRuntime):
    family = "mlu"
    torch_type = "mlu"
    visible_devices_env = "MLU_VISIBLE_DEVICES"
    device_node = "cambricon_dev"
    product = "Cambricon MLU"
    vendor_module = "torch_mlu"
    fatal_messages = ("cnrtErrorNoDevice", "device lost", "mlu unfinished")
