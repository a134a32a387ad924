"""The actor runtime: mailboxes, tell/ask, supervision, broadcast.

This package's private modules import no domain code; the domain actors
(scanner, registry, ports, ttl, app actors, ...) live in its public modules.
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
