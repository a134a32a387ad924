"""Runtime errors. Domain errors derive from `homehelper.errors.HomeHelperError`."""

from __future__ import annotations


class ActorError(Exception):
    """Base of the runtime's errors."""

    reply_error = True


class MailboxFull(ActorError):
    def __init__(self, name: str) -> None:
        super().__init__(f"mailbox of {name!r} is full")
        self.actor = name


class MailboxClosed(ActorError):
    def __init__(self, name: str) -> None:
        super().__init__(f"actor {name!r} is not running")
        self.actor = name


class ActorTimeout(ActorError):
    def __init__(self, name: str, msg: object, timeout: float) -> None:
        super().__init__(f"{name!r} did not answer {type(msg).__name__} within {timeout:g} s")
        self.actor = name


class ActorCrashed(ActorError):
    def __init__(self, name: str, error: BaseException) -> None:
        super().__init__(f"{name!r} crashed handling the request: {error!r}")
        self.actor = name
        self.error = error
