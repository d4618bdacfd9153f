"""The one object of a service process that its Celery tasks reach their long-lived state through.

Celery calls a task function with the message only; a worker's engine and
batcher, or the control service's storage and ledger, are built once when
the process starts and installed here for every task thread to find.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class ProcessGlobal(Generic[T]):
    """Holds one value for the whole process; reading it before it is installed says how to start the process."""

    def __init__(self, what: str, command: str) -> None:
        self._what = what
        self._command = command
        self._value: T | None = None

    def install(self, value: T | None) -> None:
        """Install the process's value at start, or None when it stops."""
        self._value = value

    def current(self) -> T:
        if self._value is None:
            raise RuntimeError(f"this process has no {self._what}; start it with `{self._command}`")
        return self._value
