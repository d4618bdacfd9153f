"""The synthesis task: a thin wrapper that hands each message to the process's runtime."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task

from shared.celery_app import SYNTHESIZE_TASK


def register_synthesis(app: Celery) -> None:
    """The bucket-queue task of a `voxfarm worker`."""

    @app.task(name=SYNTHESIZE_TASK, bind=True, acks_late=True)
    def synthesize(self: Task, *args: Any, **kwargs: Any) -> dict[str, Any]:
        from workers.costs import COSTS

        # Timed whole: Celery's task thread less this is its own tracing and the acknowledgement.
        with COSTS.part("handler"):
            return _handle(self, args, kwargs)


def _handle(task: Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    from workers.runtime import current_runtime

    # A work unit carries several segments under 'unit'; anything but exactly one keyword argument,
    # 'segment' or 'unit', is a malformed message.
    if not args and set(kwargs) == {"unit"}:
        return current_runtime().handle_unit(task, kwargs["unit"])
    payload: Any = kwargs.get("segment") if not args and set(kwargs) == {"segment"} else {"args": args, **kwargs}
    return current_runtime().handle(task, payload)
