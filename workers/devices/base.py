"""The device seam: one backend per accelerator family, the same questions asked of each.

A worker process owns one card. Before anything imports the vendor runtime,
``pin`` narrows the family's visible-devices variable to that card (the
runtimes read it once, at initialisation), which is why card-owning
processes are started with spawn and never fork. ``probe`` answers "how
many cards are there" from the kernel's device nodes or /proc without
importing or initialising any runtime, so it is safe in a parent that will
fork. Everything else (``init``, ``synchronize``, ``memory``, ``compile``,
``smoke_test``, ``identity``) runs inside the worker after ``init``.

Vendor paths are written against each vendor's documented API and isolated
in their own module; only the CPU backend runs on the build machines.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from shared.errors import DeviceError, DeviceOutOfMemoryError

if TYPE_CHECKING:
    import torch

#: Set by ``pin`` to the ``family:index`` this process was pinned to, so that
#: ``init`` knows the card is now the runtime's device 0.
PINNED_ENV = "VOXFARM_PINNED_DEVICE"
_FALLBACK_WARNING = re.compile(r"fall(?:s|ing)?[ _-]?back\b.*\bcpu\b|\bcpu\b.*\bfall(?:s|ing)?[ _-]?back", re.I)
_OOM_MESSAGE = re.compile(r"out of memory|\boom\b|memory allocation failed|alloc(?:ate)? .*fail", re.I)


@dataclass(frozen=True)
class ProbeResult:
    """How many cards of a family this host shows, found without initialising a runtime."""

    family: str
    count: int
    detail: str
    """Where the count came from, or why there is nothing (for logs and error messages)."""

    @property
    def available(self) -> bool:
        return self.count > 0


@dataclass(frozen=True)
class MemoryStats:
    """Device memory in bytes; None where the runtime cannot say."""

    free_bytes: int | None
    total_bytes: int | None
    allocated_bytes: int | None
    peak_bytes: int | None
    reserved_bytes: int | None = None
    """Held by the framework's caching allocator (allocated plus its cache); None where there is none."""


@dataclass(frozen=True)
class DeviceIdentity:
    """What a metrics label or a log line needs to say which card and software produced a figure."""

    family: str
    index: int
    name: str
    runtime: dict[str, str] = field(default_factory=dict)
    """Runtime versions: torch, the vendor plugin, driver, toolkit."""


def visible_list(value: str | None) -> list[str] | None:
    """``"2,3"`` -> ``["2", "3"]``; None when the variable is unset (every card visible)."""
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


def count_device_nodes(directory: Path, pattern: str) -> int:
    """Count entries like ``/dev/davinci0`` whose names fully match ``pattern``; never opens them."""
    try:
        return sum(1 for entry in directory.iterdir() if re.fullmatch(pattern, entry.name))
    except OSError:
        return 0


class DeviceBackend(ABC):
    """One accelerator family. Subclasses fill in the class variables and the vendor calls."""

    family: ClassVar[str]
    torch_type: ClassVar[str]
    """The torch device type tensors live on (``cuda`` for HIP builds and CUDA-compatible plugins)."""
    visible_devices_env: ClassVar[str | None] = None
    vendor_module: ClassVar[str | None] = None
    """The plugin to import after pinning (``torch_npu``...), or None when torch alone suffices."""
    compiles_by_default: ClassVar[bool] = True
    static_frames: ClassVar[bool] = False
    """Compile the audio stage once per frame bucket instead of once with a symbolic frame axis
    (graph compilers that want every shape static, such as Ascend's)."""
    fatal_messages: ClassVar[tuple[str, ...]] = ()
    """Error text meaning the card itself is broken (the process must exit, not retry)."""
    device_node: ClassVar[str | None] = None
    """The driver's ``/dev`` node name before the card number (``davinci`` for ``/dev/davinci0``):
    the default ``probe`` counts these. None where the family probes another way."""
    product: ClassVar[str] = ""
    """The cards' name in a probe's report (``Ascend NPU``)."""

    def __init__(self, index: int = 0) -> None:
        self.index = index
        self._device: torch.device | None = None

    # --- before the runtime exists -------------------------------------------------------

    @classmethod
    def probe(cls, root: Path = Path("/"), environ: MutableMapping[str, str] | None = None) -> ProbeResult:
        """Count this family's cards from device nodes and the environment; imports nothing.

        The default counts ``/dev/<device_node>N`` and narrows the count to
        the visible-devices list; families found another way override it.
        """
        if cls.device_node is None:
            raise NotImplementedError(f"{cls.__name__} names no device node to probe")
        env = os.environ if environ is None else environ
        nodes = f"/dev/{cls.device_node}"
        found = count_device_nodes(root / "dev", rf"{re.escape(cls.device_node)}\d+")
        if not found:
            return ProbeResult(cls.family, 0, f"no {cls.product}: no {nodes}N nodes")
        visible = visible_list(env.get(cls.visible_devices_env)) if cls.visible_devices_env else None
        if visible is not None:
            return ProbeResult(cls.family, min(len(visible), found), f"{found} {nodes}*, visible {visible}")
        return ProbeResult(cls.family, found, f"{found} {nodes}* nodes")

    @classmethod
    def pin(cls, index: int, environ: MutableMapping[str, str] | None = None) -> None:
        """Make card ``index`` the only one this process's runtime will see.

        ``index`` counts within an inherited visible-devices list, the way
        the runtimes themselves count, so pinning composes with a container
        or scheduler that already narrowed the list.
        """
        env = os.environ if environ is None else environ
        cls._refuse_if_runtime_loaded()
        if cls.visible_devices_env is not None:
            inherited = visible_list(env.get(cls.visible_devices_env))
            if inherited is not None and index >= len(inherited):
                raise DeviceError(
                    f"{cls.family}:{index} is not visible: {cls.visible_devices_env}={env[cls.visible_devices_env]}"
                )
            env[cls.visible_devices_env] = inherited[index] if inherited is not None else str(index)
        env[PINNED_ENV] = f"{cls.family}:{index}"

    @classmethod
    def _refuse_if_runtime_loaded(cls) -> None:
        if cls.vendor_module is not None and cls.vendor_module in sys.modules:
            raise DeviceError(f"pin() must run before {cls.vendor_module} is imported; start the worker with spawn")

    def local_index(self, environ: MutableMapping[str, str] | None = None) -> int:
        """The runtime's index for our card: 0 once pinned, else the index as given."""
        env = os.environ if environ is None else environ
        pinned = env.get(PINNED_ENV)
        if pinned is None:
            return self.index
        if pinned != f"{self.family}:{self.index}":
            raise DeviceError(f"this process is pinned to {pinned}; it cannot open {self.family}:{self.index}")
        return 0

    # --- inside the worker -----------------------------------------------------------------

    @abstractmethod
    def init(self) -> torch.device:
        """Import the runtime, check the card is there, make it current, and return its torch device."""

    @property
    def device(self) -> torch.device:
        if self._device is None:
            raise DeviceError(f"{self.family}:{self.index} is used before init()")
        return self._device

    def synchronize(self) -> None:  # noqa: B027 - a no-op where work is synchronous (the CPU)
        """Wait for the card's queued work (the host sync around a timed stage)."""

    def memory(self) -> MemoryStats:
        return MemoryStats(None, None, None, None)

    def reset_peak_memory(self) -> None:  # noqa: B027 - a no-op where the runtime keeps no peak
        """Start a new window for ``memory().peak_bytes``."""

    def identity(self) -> DeviceIdentity:
        import torch

        return DeviceIdentity(self.family, self.index, self.family, {"torch": torch.__version__})

    def supports_dtype(self, dtype: torch.dtype) -> bool:
        import torch

        return dtype == torch.float32

    # --- compilation -----------------------------------------------------------------------

    def configure_compile_cache(self, cache_dir: Path) -> None:
        """Point the compilers' on-disk caches at ``cache_dir`` so a restarted worker reuses them."""
        import torch._inductor.config as inductor_config

        cache_dir.mkdir(parents=True, exist_ok=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir / "inductor")
        os.environ["TRITON_CACHE_DIR"] = str(cache_dir / "triton")
        inductor_config.fx_graph_cache = True

    def compile_backend(self) -> str | Callable[..., Any]:
        """What ``torch.compile`` should lower with on this family."""
        return "inductor"

    def compile(
        self,
        module: Callable[..., Any],
        on_fallback: Callable[[BaseException], None] | None = None,
        *,
        marked_dynamic: bool = False,
    ) -> Any:
        """``torch.compile`` without graph breaks, falling back to eager if it fails.

        Shapes are static: every shape is its own graph, unless ``marked_dynamic``,
        where the axes the caller marks with ``torch._dynamo.mark_dynamic`` are
        symbolic (one graph for every length along them) and all others stay static.
        """
        import torch
        import torch._dynamo.config as dynamo_config

        # Every (batch, bucket) shape is its own graph: allow many, never go dynamic by surprise.
        for name in ("recompile_limit", "cache_size_limit"):
            if hasattr(dynamo_config, name):
                setattr(dynamo_config, name, max(getattr(dynamo_config, name), 512))
        dynamo_config.automatic_dynamic_shapes = False
        compiled = torch.compile(
            module, backend=self.compile_backend(), dynamic=None if marked_dynamic else False, fullgraph=True
        )
        return EagerFallback(compiled, module, on_fallback)

    # --- health ----------------------------------------------------------------------------

    def smoke_workload(self, device: torch.device) -> dict[str, torch.Tensor]:
        """The operators the engines rely on, on ``device``, with fixed inputs."""
        from workers.devices.smoke import engine_operators

        return engine_operators(device)

    def smoke_test(self) -> None:
        """Run the engine's operators on the card and on the CPU; fail if any ran elsewhere or disagrees.

        Catches a plugin that silently computes an operator on the CPU:
        either the result comes back as a CPU tensor, or the plugin warns
        that it fell back (torch_npu and others do, once per operator).
        """
        import torch

        device = self.device
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with self.errors("the smoke test"):
                results = self.smoke_workload(device)
                self.synchronize()
        wrong = {name: str(t.device) for name, t in results.items() if t.device.type != device.type}
        if wrong:
            raise DeviceError(f"operators ran off {device} (silent CPU fallback?): {wrong}")
        fallbacks = sorted({str(w.message) for w in caught if _FALLBACK_WARNING.search(str(w.message))})
        if fallbacks:
            raise DeviceError(f"operators fell back to the CPU on {device}: {'; '.join(fallbacks)[:500]}")
        if device.type == "cpu":
            return
        reference = self.smoke_workload(torch.device("cpu"))
        for name, tensor in results.items():
            expected = reference[name]
            if tensor.shape != expected.shape or not torch.allclose(tensor.cpu().float(), expected.float(), atol=1e-2):
                raise DeviceError(f"{name} on {device} disagrees with the CPU; the runtime or card is broken")

    # --- errors ----------------------------------------------------------------------------

    def is_out_of_memory(self, exc: BaseException) -> bool:
        import torch

        return isinstance(exc, torch.OutOfMemoryError) or (
            isinstance(exc, RuntimeError) and bool(_OOM_MESSAGE.search(str(exc)))
        )

    @contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Turn runtime failures into voxfarm's: OOM (retry smaller) or a broken card (fatal)."""
        try:
            yield
        except (DeviceError, DeviceOutOfMemoryError):
            raise
        except Exception as exc:
            if self.is_out_of_memory(exc):
                raise DeviceOutOfMemoryError(f"{self.family}:{self.index} ran out of memory in {what}: {exc}") from exc
            if any(marker.lower() in str(exc).lower() for marker in self.fatal_messages):
                raise DeviceError(f"{self.family}:{self.index} failed in {what}: {exc}") from exc
            raise


class EagerFallback:
    """A compiled callable that switches to eager for good if compilation itself fails.

    Only compiler failures trigger the switch: runtime errors (OOM, bad input)
    propagate unchanged, so they are not hidden behind a slower path.
    """

    def __init__(
        self,
        compiled: Callable[..., Any],
        eager: Callable[..., Any],
        on_fallback: Callable[[BaseException], None] | None,
    ) -> None:
        self.compiled = compiled
        self.eager = eager
        self.on_fallback = on_fallback
        self.fell_back: BaseException | None = None

    def __call__(self, *args: Any) -> Any:
        if self.fell_back is not None:
            return self.eager(*args)
        try:
            return self.compiled(*args)
        except Exception as exc:
            if not _is_compiler_failure(exc):
                raise
            self.fell_back = exc
            if self.on_fallback is not None:
                self.on_fallback(exc)
            return self.eager(*args)


def _is_compiler_failure(exc: BaseException) -> bool:
    from torch._dynamo import exc as dynamo_exc

    return isinstance(
        exc, dynamo_exc.BackendCompilerFailed | dynamo_exc.Unsupported | dynamo_exc.InternalTorchDynamoError
    )
