"""How kombu's Redis transport lays out its keys, for code that reads them without kombu.

kombu (5.5-5.7) keeps each queue in a Redis list named after it; each
priority step beyond the first in a sibling list ``<queue>\\x06\\x16<n>``;
the exchange bindings of a queue in the set ``_kombu.binding.<exchange>``
whose members end in ``\\x06\\x16<queue>``; and the messages delivered and
not yet acknowledged in the hash ``unacked``. ``shared.broker_transport``
builds on the same transport.
"""

from __future__ import annotations

PRIORITY_SEPARATOR = "\x06\x16"
"""kombu's ``Channel.sep``: joins a queue name and its priority step, and the fields of a binding."""
BINDING_PREFIX = "_kombu.binding."
UNACKED_KEY = "unacked"


def base_queue(list_name: str) -> str:
    """The queue a list belongs to: itself, or the queue whose priority step it holds."""
    return list_name.split(PRIORITY_SEPARATOR, 1)[0]


def bound_queue(binding: str) -> str:
    """The queue named by one member of a binding set (routing key, pattern and queue joined by the separator)."""
    return binding.rsplit(PRIORITY_SEPARATOR, 1)[-1]
