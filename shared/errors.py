"""One exception root for voxfarm, split by what the caller should do next.

- ``BadInputError``: the request itself is wrong; reject it with the message,
  never retry.
- ``RetryableError``: the segment or call can be tried again (a storage
  outage, a broker hiccup, a transient device error).
- ``FatalError``: this process or its card is broken; exit non-zero and let
  the supervisor restart it.

Every message says what the user can do about it, because the CLI prints it
as is.
"""

from __future__ import annotations


class VoxfarmError(Exception):
    """Root of every error voxfarm raises on purpose."""

    exit_code = 1


class BadInputError(VoxfarmError):
    """The input (book, message, option) cannot be used; retrying will not help."""

    exit_code = 2


class UnsupportedFormatError(BadInputError):
    """The source file's format is not one voxfarm reads."""


class EmptyInputError(BadInputError):
    """The source holds no speakable text."""


class UnknownVoiceError(BadInputError):
    """The voice id names no voice that this installation can find."""


class UnknownEngineError(BadInputError):
    """The engine id names no engine that this installation has."""


class NotFoundError(BadInputError):
    """A job, object or file that was asked for does not exist."""


class ConflictError(BadInputError):
    """The job's state does not allow this now: it is still running, or already finished."""


class MessageError(BadInputError):
    """A queue message failed validation; it is dead-lettered, never retried."""


class ConfigError(BadInputError):
    """A setting or configuration file is invalid."""


class RetryableError(VoxfarmError):
    """A transient failure: the same work may succeed if tried again."""

    exit_code = 3


class StorageError(RetryableError):
    """Object storage failed or could not be reached."""


class BrokerError(RetryableError):
    """Redis (broker or ledger) failed or could not be reached."""


class EngineError(RetryableError):
    """Synthesis of a batch failed; the batch may be split and retried."""


class WorkerFaultError(RetryableError):
    """This worker, not the segment, failed: hand the segment to another worker without using its retries."""

    def __init__(self, message: str, *, suspect: bool = False) -> None:
        super().__init__(message)
        self.suspect = suspect
        """The segment was in the engine call that failed: if this keeps happening, the segment is to blame."""


class DeviceOutOfMemoryError(EngineError):
    """The card ran out of memory for this batch; a smaller batch may fit."""


class FatalError(VoxfarmError):
    """The process or its device cannot continue; exit and be restarted."""

    exit_code = 70


class DeviceError(FatalError):
    """The accelerator is missing, broken, or silently fell back to the CPU."""
