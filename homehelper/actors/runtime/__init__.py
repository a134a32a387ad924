"""The actor runtime: mailboxes, tell/ask, supervision, broadcast.

Generic and at the bottom layer: it imports nothing else from homehelper, so
messages, monitor, backends and bus can build on it (see tests/test_layers.py).
"""

from ._broadcast import Broadcast, Subscription
from ._errors import ActorCrashed, ActorError, ActorTimeout, MailboxClosed, MailboxFull
from ._events import (
    ChildCrashed,
    ChildExited,
    ChildQuarantined,
    ChildRestarting,
    ChildStarted,
    ChildStopped,
    CommandFailed,
    Event,
)
from ._runtime import Actor, ActorRef, open_mailbox
from ._supervisor import ChildSpec, Restart, RestartPolicy, Supervisor, UnknownChild

__all__ = [
    "Actor",
    "ActorCrashed",
    "ActorError",
    "ActorRef",
    "ActorTimeout",
    "Broadcast",
    "ChildCrashed",
    "ChildExited",
    "ChildQuarantined",
    "ChildRestarting",
    "ChildSpec",
    "ChildStarted",
    "ChildStopped",
    "CommandFailed",
    "Event",
    "MailboxClosed",
    "MailboxFull",
    "Restart",
    "RestartPolicy",
    "Subscription",
    "Supervisor",
    "UnknownChild",
    "open_mailbox",
]
