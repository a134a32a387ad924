"""Every message in HomeHelper, in one place.

Commands are imperative (`StartApp`), events past tense (`AppStarted`). The
runtime's own supervision events are re-exported here too.
"""

from ..actors import ChildExited, ChildQuarantined, ChildRestarting, ChildStarted, ChildStopped
from ._apps import *  # noqa: F403
from ._apps import __dict__ as _apps_ns
from ._base import Command, Event
from ._system import *  # noqa: F403
from ._system import __dict__ as _system_ns

__all__ = [
    "ChildExited",
    "ChildQuarantined",
    "ChildRestarting",
    "ChildStarted",
    "ChildStopped",
    "Command",
    "Event",
    *(n for ns in (_apps_ns, _system_ns) for n, v in ns.items() if isinstance(v, type) and issubclass(v, (Command, Event)) and v not in (Command, Event)),
]
