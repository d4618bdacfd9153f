"""A short Redis lock around a change to a document kept in storage.

A few documents are changed in place by whichever process runs an
operation: a job's ``submission.json`` (pause, cancel, priority, resume)
and ``control/tenants.json`` (tenant weights and quotas). Each change reads
the document, changes a field and writes it back; two at once would each
write what they read, and one change would be lost, found missing only
after Redis lost its own copy. Storage offers no compare-and-swap that
works alike on a POSIX folder and every S3 server, but Redis is up whenever
these operations run (each writes the ledger too), so a lock there puts the
changes in a row.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from shared.errors import BrokerError
from shared.redis_keys import document_lock_key

log = logging.getLogger(__name__)

HOLD_S = 30.0
"""The lock's expiry: a process that dies holding it delays the next change at most this long."""
WAIT_S = 10.0
"""How long a change waits for another one to finish before giving up."""


@contextmanager
def changing(client: redis.Redis, path: str) -> Iterator[None]:
    """Hold the lock of the stored document at ``path`` (a storage path) while it is read, changed and written."""
    lock = client.lock(document_lock_key(path), timeout=HOLD_S, sleep=0.01, blocking_timeout=WAIT_S)
    try:
        acquired = lock.acquire()
    except redis.RedisError as exc:
        raise BrokerError(f"cannot lock {path} to change it: {exc}; check VOXFARM_REDIS_URL") from exc
    if not acquired:
        raise BrokerError(f"{path} was held by another change for {WAIT_S:g} s; try again")
    try:
        yield
    finally:
        try:
            lock.release()
        except redis.exceptions.LockNotOwnedError:
            log.warning("the lock of %s expired during a change of more than %.0f s", path, HOLD_S)
        except redis.RedisError:
            pass  # it expires on its own
