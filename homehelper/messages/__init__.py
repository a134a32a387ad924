"""Every message in HomeHelper, in one place.

Commands are imperative (`StartApp`), events past tense (`AppStarted`). The
runtime's own events (supervision, CommandFailed) and the `Event` base are
re-exported here too. One module per
area; each is listed twice below (star import, and in `_AREAS`).
"""

from types import ModuleType

from ..actors.runtime import _events as _runtime
from ..actors.runtime._events import *  # noqa: F403 - supervision records, CommandFailed
from . import (
    _apps,
    _backup,
    _bus,
    _fleet,
    _history,
    _jobs,
    _monitor,
    _notify,
    _options,
    _records,
    _services,
    _sources,
    _streamlit,
    _system,
)
from ._apps import *  # noqa: F403
from ._backup import *  # noqa: F403
from ._base import Command, Event
from ._bus import *  # noqa: F403
from ._fleet import *  # noqa: F403
from ._history import *  # noqa: F403
from ._jobs import *  # noqa: F403
from ._monitor import *  # noqa: F403
from ._notify import *  # noqa: F403
from ._options import *  # noqa: F403
from ._records import *  # noqa: F403 - plain records (not Events), listed in its own __all__
from ._services import *  # noqa: F403
from ._sources import *  # noqa: F403
from ._streamlit import *  # noqa: F403
from ._system import *  # noqa: F403

_AREAS: tuple[ModuleType, ...] = (_apps, _backup, _bus, _fleet, _history, _jobs, _monitor, _notify, _options,
                                  _services, _sources, _streamlit, _system)


def _messages(module: ModuleType) -> list[str]:
    return [n for n, v in vars(module).items()
            if isinstance(v, type) and issubclass(v, (Command, Event)) and v not in (Command, Event)
            and v.__module__ == module.__name__]


__all__ = [  # built from the area modules, so no name is listed twice by hand
    *_runtime.__all__,  # the runtime's records and events, Event included
    "Command",
    *_records.__all__,
    *(name for area in _AREAS for name in _messages(area)),
]
