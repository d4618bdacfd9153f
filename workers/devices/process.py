"""Start a process that owns one card: spawn it, pin the card, and only then import its work.

A forked child inherits a parent's initialised runtime (CUDA, CANN, ...) in
a state it cannot use, and a visible-devices variable set after the runtime
has read it does nothing. So the child is spawned, and the target is named
as ``"package.module:function"`` rather than passed as a function: the
child pins first and imports the target's module after, so even a module
that imports ``torch_npu`` at the top sees only its own card.
"""

from __future__ import annotations

import importlib
import multiprocessing
from multiprocessing.process import BaseProcess
from typing import Any

from workers.devices.spec import DeviceSpec, parse_device_spec


def spawn_pinned(device: str | DeviceSpec, target: str, *args: Any, name: str | None = None) -> BaseProcess:
    """Start ``target(*args)`` in a spawned process pinned to ``device``; returns the started process."""
    spec = parse_device_spec(device) if isinstance(device, str) else device
    spec.index  # noqa: B018 - raises a ConfigError for a multi-device spec before anything starts
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=_run_pinned, args=(str(spec), target, *args), name=name or f"voxfarm-{spec}")
    process.start()
    return process


def _run_pinned(device: str, target: str, *args: Any) -> None:
    from workers.devices import backend_class

    spec = parse_device_spec(device)
    backend_class(spec.family).pin(spec.index)
    module_name, _, function = target.partition(":")
    getattr(importlib.import_module(module_name), function)(*args)
