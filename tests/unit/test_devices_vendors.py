"""Vendor backends driven by FAKE vendor modules (no Ascend, Cambricon or Kunlunxin card here).

Each test writes stand-ins for the vendor packages (``torch_npu``,
``torchair``, ``torch_mlu``, ``torch_xmlir``) that implement just the
documented calls the backends make, then runs the backend in a fresh
subprocess with those stand-ins first on ``sys.path``. What this proves:
the backends call the documented API in the right order, pin before the
vendor import, map memory/versions/errors, and never use Intel's
``torch.xpu``. What it cannot prove: that the real plugins behave as
documented. Those paths have not run on real hardware.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

FAKE_TORCH_NPU = '''
"""FAKE torch_npu for tests: registers an "npu" device type and a torch.npu module."""
import os, types
import torch
SEEN_VISIBLE = os.environ.get("ASCEND_RT_VISIBLE_DEVICES")
CALLS = []
torch.utils.rename_privateuse1_backend("npu")
torch.npu = types.SimpleNamespace(
    is_available=lambda: True,
    device_count=lambda: 1,
    set_device=lambda index: CALLS.append(("set_device", index)),
    synchronize=lambda device=None: CALLS.append(("synchronize", str(device))),
    mem_get_info=lambda device=None: (3 << 30, 64 << 30),
    memory_allocated=lambda device=None: 123,
    max_memory_allocated=lambda device=None: 456,
    memory_reserved=lambda device=None: 789,
    reset_peak_memory_stats=lambda device=None: CALLS.append(("reset", str(device))),
    get_device_name=lambda index=0: "Ascend910B (fake)",
    is_bf16_supported=lambda: True,
)
__version__ = "2.5.1.fake"
class version:
    cann = "8.0.fake"
'''

FAKE_TORCHAIR = '''
"""FAKE torchair for tests."""
class CompilerConfig:
    pass
def get_npu_backend(*, compiler_config=None):
    assert isinstance(compiler_config, CompilerConfig)
    return "fake-torchair-backend"
'''

FAKE_TORCH_MLU = '''
"""FAKE torch_mlu for tests: registers an "mlu" device type and a torch.mlu module."""
import os, types
import torch
SEEN_VISIBLE = os.environ.get("MLU_VISIBLE_DEVICES")
torch.utils.rename_privateuse1_backend("mlu")
torch.mlu = types.SimpleNamespace(
    is_available=lambda: True,
    device_count=lambda: 1,
    set_device=lambda index: None,
    synchronize=lambda device=None: None,
    mem_get_info=lambda device=None: (1 << 30, 48 << 30),
    memory_allocated=lambda device=None: 7,
    max_memory_allocated=lambda device=None: 8,
    reset_peak_memory_stats=lambda device=None: None,
    get_device_name=lambda index=0: "MLU370 (fake)",
)
__version__ = "1.20.fake"
'''

FAKE_TORCH_XMLIR_CUDA_MODE = '''
"""FAKE torch_xmlir, recent release: the cards appear through torch.cuda (CUDA-compatible mode)."""
import os
import torch
SEEN_VISIBLE = {k: os.environ.get(k) for k in ("XPU_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")}
CALLS = []
torch.cuda.is_available = lambda: True
torch.cuda.device_count = lambda: 1
torch.cuda.set_device = lambda index: CALLS.append(("set_device", index))
torch.cuda.synchronize = lambda device=None: CALLS.append(("synchronize", str(device)))
torch.cuda.mem_get_info = lambda device=None: (5 << 30, 96 << 30)
torch.cuda.memory_allocated = lambda device=None: 11
torch.cuda.max_memory_allocated = lambda device=None: 22
torch.cuda.memory_reserved = lambda device=None: 33
torch.cuda.get_device_name = lambda device=None: "P800 (fake)"
__version__ = "fake-cuda-mode"
'''

FAKE_TORCH_XMLIR_PRIVATE_MODE = {
    "torch_xmlir/__init__.py": '''
"""FAKE torch_xmlir, older release: a private xpu device driven through torch_xmlir.xpu."""
import types
import torch
CALLS = []
torch.cuda.is_available = lambda: False
xpu = types.SimpleNamespace(
    is_available=lambda: True,
    device_count=lambda: 2,
    set_device=lambda index: CALLS.append(("set_device", index)),
    synchronize=lambda: CALLS.append(("synchronize",)),
    get_device_name=lambda index=0: "R200 (fake)",
)
__version__ = "fake-xpu-mode"
''',
    "torch_xmlir/core/__init__.py": "",
    "torch_xmlir/core/xpu_model.py": """
def get_memory_info(device):
    return {"kb_free": 1024, "kb_total": 4096}
""",
}

#: Replaces Intel's torch.xpu in the subprocess: any use of it fails the test.
INTEL_XPU_TRIPWIRE = """
import torch
class _IntelXpuTripwire:
    def __getattr__(self, name):
        raise AssertionError(f"the Kunlunxin backend touched Intel's torch.xpu.{name}")
torch.xpu = _IntelXpuTripwire()
"""


def run_with_fakes(tmp_path: Path, fakes: dict[str, str], script: str, prelude: str = "") -> dict[str, Any]:
    """Write the fake modules, run ``script`` in a fresh interpreter, return the JSON it prints last."""
    fake_root = tmp_path / "fakes"
    for name, source in fakes.items():
        path = fake_root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    fake_root.mkdir(exist_ok=True)
    program = f"import sys\nsys.path.insert(0, {str(fake_root)!r})\n" + prelude + textwrap.dedent(script)
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, check=False, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_npu_backend_with_fake_torch_npu_and_torchair(tmp_path: Path) -> None:
    result = run_with_fakes(
        tmp_path,
        {"torch_npu.py": FAKE_TORCH_NPU, "torchair.py": FAKE_TORCHAIR},
        """
        import json
        from workers.devices import backend_class
        from shared.errors import DeviceOutOfMemoryError
        Npu = backend_class("npu")
        Npu.pin(2)
        backend = Npu(2)
        device = backend.init()
        import torch, torch_npu
        backend.synchronize()
        memory = backend.memory()
        try:
            with backend.errors("a batch"):
                raise RuntimeError("NPU out of memory. Tried to allocate 1.50 GiB")
            oom = False
        except DeviceOutOfMemoryError:
            oom = True
        print(json.dumps({
            "device": str(device),
            "seen_visible": torch_npu.SEEN_VISIBLE,
            "calls": torch_npu.CALLS,
            "memory": [memory.free_bytes, memory.total_bytes, memory.allocated_bytes, memory.peak_bytes,
                       memory.reserved_bytes],
            "bf16": backend.supports_dtype(torch.bfloat16),
            "compile_backend": backend.compile_backend(),
            "identity": backend.identity().runtime,
            "oom": oom,
        }))
        """,
    )

    assert result["device"] == "npu:0"
    assert result["seen_visible"] == "2"  # pinned before torch_npu was imported
    assert result["calls"][:2] == [["set_device", 0], ["synchronize", "npu:0"]]
    assert result["memory"] == [3 << 30, 64 << 30, 123, 456, 789]
    assert result["bf16"] is True
    assert result["compile_backend"] == "fake-torchair-backend"
    assert result["identity"]["torch_npu"] == "2.5.1.fake" and result["identity"]["cann"] == "8.0.fake"
    assert result["oom"] is True


def test_mlu_backend_with_fake_torch_mlu(tmp_path: Path) -> None:
    result = run_with_fakes(
        tmp_path,
        {"torch_mlu.py": FAKE_TORCH_MLU},
        """
        import json
        from workers.devices import backend_class
        Mlu = backend_class("mlu")
        Mlu.pin(1)
        backend = Mlu(1)
        device = backend.init()
        import torch, torch_mlu
        memory = backend.memory()
        print(json.dumps({
            "device": str(device),
            "seen_visible": torch_mlu.SEEN_VISIBLE,
            "memory": [memory.free_bytes, memory.allocated_bytes],
            "name": backend.identity().name,
            "bf16": backend.supports_dtype(torch.bfloat16),
            "compile_backend": backend.compile_backend(),
        }))
        """,
    )

    assert result == {
        "device": "mlu:0",
        "seen_visible": "1",
        "memory": [1 << 30, 7],
        "name": "MLU370 (fake)",
        "bf16": False,  # the fake runtime has no is_bf16_supported: not assumed
        "compile_backend": "inductor",
    }


def test_kunlunxin_cuda_compatible_release_runs_on_torch_cuda_never_intel_xpu(tmp_path: Path) -> None:
    result = run_with_fakes(
        tmp_path,
        {"torch_xmlir.py": FAKE_TORCH_XMLIR_CUDA_MODE},
        prelude=INTEL_XPU_TRIPWIRE,
        script="""
        import json
        from workers.devices import backend_class
        Klx = backend_class("kunlunxin")
        Klx.pin(5)
        backend = Klx(5)
        device = backend.init()
        import torch_xmlir
        backend.synchronize()
        memory = backend.memory()
        print(json.dumps({
            "device": str(device),
            "mode": backend.mode,
            "seen_visible": torch_xmlir.SEEN_VISIBLE,
            "calls": torch_xmlir.CALLS,
            "memory": [memory.free_bytes, memory.total_bytes, memory.allocated_bytes, memory.peak_bytes,
                       memory.reserved_bytes],
            "identity": [backend.identity().name, backend.identity().runtime["torch_xmlir"]],
            "bf16": backend.supports_dtype(torch.bfloat16),
            "compiles_by_default": backend.compiles_by_default,
        }))
        """,
    )

    assert result["device"] == "cuda:0"
    assert result["mode"] == "cuda"
    assert result["seen_visible"] == {"XPU_VISIBLE_DEVICES": "5", "CUDA_VISIBLE_DEVICES": "0"}
    assert result["calls"] == [["set_device", 0], ["synchronize", "cuda:0"]]
    assert result["memory"] == [5 << 30, 96 << 30, 11, 22, 33]
    assert result["identity"] == ["P800 (fake)", "fake-cuda-mode"]
    assert result["bf16"] is True
    assert result["compiles_by_default"] is False


def test_kunlunxin_private_device_release_uses_torch_xmlir_xpu_never_intel_xpu(tmp_path: Path) -> None:
    result = run_with_fakes(
        tmp_path,
        FAKE_TORCH_XMLIR_PRIVATE_MODE,
        prelude=INTEL_XPU_TRIPWIRE,
        script="""
        import json
        from workers.devices import backend_class
        from workers.devices.base import PINNED_ENV
        import os
        backend = backend_class("kunlunxin")(1)  # not pinned: the plugin's own index 1
        device = backend.init()
        import torch_xmlir
        backend.synchronize()
        backend.reset_peak_memory()
        memory = backend.memory()
        print(json.dumps({
            "device": str(device),
            "mode": backend.mode,
            "calls": torch_xmlir.CALLS,
            "memory": [memory.free_bytes, memory.total_bytes, memory.allocated_bytes],
            "name": backend.identity().name,
            "fp16": backend.supports_dtype(torch.float16),
            "bf16": backend.supports_dtype(torch.bfloat16),
        }))
        """,
    )

    assert result["device"] == "xpu:1"
    assert result["mode"] == "xpu"
    assert result["calls"] == [["set_device", 1], ["synchronize"]]
    assert result["memory"] == [1024 * 1024, 4096 * 1024, None]
    assert result["name"] == "R200 (fake)"
    assert (result["fp16"], result["bf16"]) == (True, False)


def test_vendor_backend_without_its_plugin_is_a_fatal_device_error(tmp_path: Path) -> None:
    result = run_with_fakes(
        tmp_path,
        {},
        """
        import json
        from workers.devices import backend_class
        from shared.errors import DeviceError
        messages = {}
        for family in ("npu", "mlu", "kunlunxin"):
            try:
                backend_class(family)(0).init()
            except DeviceError as exc:
                messages[family] = str(exc)
        print(json.dumps(messages))
        """,
    )

    assert "torch_npu" in result["npu"]
    assert "torch_mlu" in result["mlu"]
    assert "torch_xmlir" in result["kunlunxin"]
