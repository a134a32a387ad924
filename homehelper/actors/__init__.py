"""Actors: the domain actors (scanner, registry, ports, ttl, app actors, ...).

The generic runtime lives in `homehelper.actors.runtime`; its names are
re-exported here for the domain actors, web and serve. Lower layers (messages,
monitor, backends, bus) import `homehelper.actors.runtime` directly.
"""

from .runtime import (
    Actor,
    ActorCrashed,
    ActorError,
    ActorRef,
    ActorTimeout,
    Broadcast,
    ChildCrashed,
    ChildExited,
    ChildQuarantined,
    ChildRestarting,
    ChildSpec,
    ChildStarted,
    ChildStopped,
    CommandFailed,
    Event,
    MailboxClosed,
    MailboxFull,
    Restart,
    RestartPolicy,
    Subscription,
    Supervisor,
    UnknownChild,
    open_mailbox,
)

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
