"""The device layer on this machine: spec parsing, probing, pinning, the real CPU backend.

Vendor backends against fake vendor modules are in test_devices_vendors.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from shared.errors import ConfigError, DeviceError, DeviceOutOfMemoryError
from workers.devices import FAMILIES, DeviceSpec, backend_class, open_device, parse_device_spec
from workers.devices.base import PINNED_ENV
from workers.devices.cpu import CpuBackend
from workers.devices.process import spawn_pinned

REPO = Path(__file__).resolve().parents[2]
VISIBLE_ENV = {
    "cuda": "CUDA_VISIBLE_DEVICES",
    "dcu": "HIP_VISIBLE_DEVICES",
    "npu": "ASCEND_RT_VISIBLE_DEVICES",
    "mlu": "MLU_VISIBLE_DEVICES",
    "kunlunxin": "XPU_VISIBLE_DEVICES",
}


# --- specs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "family", "indices", "workers", "all_cards"),
    [
        ("cpu", "cpu", (), 1, False),
        ("cpu:0", "cpu", (), 1, False),
        ("cpu:4", "cpu", (), 4, False),
        ("CPU:all", "cpu", (), 1, True),
        ("cuda", "cuda", (0,), 1, False),
        ("cuda:3", "cuda", (3,), 1, False),
        ("cuda:0-7", "cuda", tuple(range(8)), 8, False),
        ("npu:0-1,4", "npu", (0, 1, 4), 3, False),
        ("npu:all", "npu", (), 1, True),
        (" dcu:2 ", "dcu", (2,), 1, False),
        ("mlu:1", "mlu", (1,), 1, False),
        ("kunlunxin:5", "kunlunxin", (5,), 1, False),
        ("klx:0", "kunlunxin", (0,), 1, False),
    ],
)
def test_device_specs_parse(text: str, family: str, indices: tuple[int, ...], workers: int, all_cards: bool) -> None:
    spec = parse_device_spec(text)

    assert (spec.family, spec.indices, spec.workers, spec.all) == (family, indices, workers, all_cards)
    assert parse_device_spec(str(spec)) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tpu:0", "unknown device family"),
        ("xpu:0", "kunlunxin"),
        ("cuda:", "nothing after"),
        ("cuda:7-3", "backwards"),
        ("cuda:1,1", "twice"),
        ("cuda:x", "not N, A-B or all"),
        ("cpu:-2", "worker count"),
        ("npu:99999", "out of range"),
    ],
)
def test_bad_device_specs_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_device_spec(text)


def test_expanding_a_spec_gives_one_worker_per_card_or_cpu_slot() -> None:
    assert [str(s) for s in parse_device_spec("cuda:0-2").expand()] == ["cuda:0", "cuda:1", "cuda:2"]
    assert [str(s) for s in parse_device_spec("npu:all").expand(available=2)] == ["npu:0", "npu:1"]
    assert [str(s) for s in parse_device_spec("cpu:3").expand()] == ["cpu", "cpu", "cpu"]
    assert len(parse_device_spec("cpu:all").expand(available=6)) == 6
    with pytest.raises(ConfigError, match="probe"):
        parse_device_spec("mlu:all").expand()
    with pytest.raises(ConfigError, match="no cuda device 3"):
        parse_device_spec("cuda:3").expand(available=2)
    with pytest.raises(ConfigError, match="several devices"):
        _ = parse_device_spec("cuda:0-1").index


# --- probing -----------------------------------------------------------------------------------


def _tree(root: Path, *files: str, content: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def test_probes_count_device_nodes_and_respect_visible_lists(tmp_path: Path) -> None:
    _tree(tmp_path, "dev/davinci0", "dev/davinci1", "dev/davinci2", "dev/davinci_manager")
    _tree(tmp_path, "dev/cambricon_dev0", "dev/cambricon_dev1", "dev/cambricon_ctl")
    _tree(tmp_path, *(f"dev/xpu{i}" for i in range(4)), "dev/xpuctrl")
    _tree(tmp_path, "proc/driver/nvidia/gpus/0000:3b:00.0/information", "proc/driver/nvidia/gpus/0000:af:00.0/x")
    _tree(tmp_path, "sys/class/kfd/kfd/topology/nodes/0/properties", content="cpu_cores_count 64\nsimd_count 0\n")
    for node in (1, 2):
        _tree(tmp_path, f"sys/class/kfd/kfd/topology/nodes/{node}/properties", content="simd_count 240\n")

    counts = {family: backend_class(family).probe(tmp_path, {}).count for family in VISIBLE_ENV}
    narrowed = backend_class("npu").probe(tmp_path, {"ASCEND_RT_VISIBLE_DEVICES": "1,2"})

    assert counts == {"cuda": 2, "dcu": 2, "npu": 3, "mlu": 2, "kunlunxin": 4}
    assert narrowed.count == 2
    assert not backend_class("cuda").probe(tmp_path / "empty", {}).available
    assert backend_class("cpu").probe().count >= 1


def test_probing_every_family_initialises_no_runtime() -> None:
    script = (
        "import sys\n"
        "from workers.devices import FAMILIES, probe\n"
        "results = [probe(family) for family in FAMILIES]\n"
        "loaded = [m for m in ('torch', 'torch_npu', 'torch_mlu', 'torch_xmlir') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "print(len(results))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False, timeout=120
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(len(FAMILIES))


# --- pinning -----------------------------------------------------------------------------------


def record_pinned_environment(out: str, fake_modules: str) -> None:
    """Spawned target: what the pinned child sees, and what a vendor module saw when imported."""
    before_import = {name: os.environ.get(name) for name in (*VISIBLE_ENV.values(), PINNED_ENV)}
    sys.path.insert(0, fake_modules)
    import fake_vendor  # records the environment at import time

    Path(out).write_text(json.dumps({"before_import": before_import, "at_import": fake_vendor.SEEN}))


@pytest.mark.parametrize("family", sorted(VISIBLE_ENV))
def test_each_family_pins_its_own_variable_before_the_vendor_import(family: str, tmp_path: Path) -> None:
    fakes = _tree(tmp_path / "fakes")
    (fakes / "fake_vendor.py").write_text(
        "import os\nSEEN = {k: v for k, v in os.environ.items() if k.endswith('VISIBLE_DEVICES')}\n"
    )
    out = tmp_path / "seen.json"

    process = spawn_pinned(f"{family}:3", f"{__name__}:record_pinned_environment", str(out), str(fakes))
    process.join(timeout=120)

    assert process.exitcode == 0
    seen = json.loads(out.read_text())
    variable = VISIBLE_ENV[family]
    assert seen["before_import"][variable] == "3"
    assert seen["at_import"][variable] == "3"
    assert seen["before_import"][PINNED_ENV] == f"{family}:3"
    assert variable not in os.environ or os.environ[variable] != "3", "pinning leaked into the parent"


def test_pinning_counts_within_an_inherited_visible_list() -> None:
    environ = {"CUDA_VISIBLE_DEVICES": "4,5"}

    backend_class("cuda").pin(1, environ)

    assert environ["CUDA_VISIBLE_DEVICES"] == "5"
    with pytest.raises(DeviceError, match="not visible"):
        backend_class("cuda").pin(2, {"CUDA_VISIBLE_DEVICES": "4,5"})


def test_pinning_after_the_vendor_runtime_is_imported_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch_npu", type(sys)("torch_npu"))

    with pytest.raises(DeviceError, match="before torch_npu is imported"):
        backend_class("npu").pin(0, {})


def test_a_pinned_process_opens_its_card_as_the_runtimes_device_zero() -> None:
    backend = backend_class("npu")(3)

    assert backend.local_index({PINNED_ENV: "npu:3"}) == 0
    assert backend.local_index({}) == 3
    with pytest.raises(DeviceError, match="pinned to npu:1"):
        backend.local_index({PINNED_ENV: "npu:1"})


def test_spawning_needs_a_single_device() -> None:
    with pytest.raises(ConfigError, match="several devices"):
        spawn_pinned("cuda:0-1", f"{__name__}:record_pinned_environment")


# --- the real CPU backend ----------------------------------------------------------------------


def test_cpu_backend_runs_its_smoke_test_and_reports_memory_and_identity() -> None:
    backend = open_device("cpu").backend

    backend.smoke_test()
    memory = backend.memory()
    identity = backend.identity()

    assert backend.device.type == "cpu"
    assert memory.total_bytes and memory.free_bytes and memory.total_bytes >= memory.free_bytes
    assert memory.allocated_bytes and memory.peak_bytes
    assert identity.family == "cpu" and identity.name
    assert "torch" in identity.runtime


def test_a_silent_cpu_fallback_fails_the_smoke_test() -> None:
    import torch

    class ReturnsCpuTensors(CpuBackend):
        """Simulates a plugin that computes an operator on the host and hands back a CPU tensor."""

        def smoke_workload(self, device: torch.device) -> dict[str, torch.Tensor]:
            return super().smoke_workload(torch.device("cpu"))

    class WarnsOfFallback(CpuBackend):
        """Simulates a plugin that keeps the device tensor but warns that it ran the op on the CPU."""

        def smoke_workload(self, device: torch.device) -> dict[str, torch.Tensor]:
            warnings.warn(
                "aten::searchsorted is not supported on this device and will fall back to run on the CPU", stacklevel=2
            )
            return super().smoke_workload(device)

    lying = ReturnsCpuTensors(0)
    lying.init()
    lying._device = torch.device("meta")  # the card this worker believes it computes on
    warning = WarnsOfFallback(0)
    warning.init()

    with pytest.raises(DeviceError, match="ran off meta"):
        lying.smoke_test()
    with pytest.raises(DeviceError, match="fell back to the CPU"):
        warning.smoke_test()


def test_runtime_errors_map_to_out_of_memory_or_a_fatal_device_error() -> None:
    import torch

    backend = backend_class("cuda")(0)

    with pytest.raises(DeviceOutOfMemoryError), backend.errors("a batch"):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    with pytest.raises(DeviceError, match="illegal memory access"), backend.errors("a batch"):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
    with pytest.raises(ValueError), backend.errors("a batch"):
        raise ValueError("not a device problem")


@pytest.mark.parametrize(("family", "message"), [("cuda", "without CUDA"), ("dcu", "HIP")])
def test_gpu_families_refuse_a_torch_build_without_their_runtime(family: str, message: str) -> None:
    import torch

    if family == "cuda" and torch.version.cuda is not None:
        pytest.fail("this test expects the CPU build of torch used by the build machines")
    with pytest.raises(DeviceError, match=message):
        open_device(f"{family}:0")


def test_a_failing_compiler_falls_back_to_eager_but_runtime_errors_propagate() -> None:
    from torch._dynamo.exc import BackendCompilerFailed

    from workers.devices.base import EagerFallback

    def broken_compiler(*args: object) -> object:
        raise BackendCompilerFailed(lambda *a: None, RuntimeError("no C++ compiler"), None)

    def eager(x: int) -> int:
        return x + 1

    def oom(x: int) -> int:
        raise RuntimeError("out of memory")

    seen: list[BaseException] = []
    fallback = EagerFallback(broken_compiler, eager, seen.append)

    assert fallback(1) == 2 and fallback(2) == 3
    assert len(seen) == 1
    with pytest.raises(RuntimeError, match="out of memory"):
        EagerFallback(oom, eager, None)(1)


def test_device_spec_for_a_single_card_names_its_index() -> None:
    assert DeviceSpec("npu", (3,)).index == 3
    assert DeviceSpec("cpu", workers=4).index == 0
