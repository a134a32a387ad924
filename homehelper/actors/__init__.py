"""Actors: the domain actors (scanner, registry, ports, ttl, app actors, ...).

The generic runtime lives in `homehelper.actors.runtime`; its names are
re-exported here for the domain actors, web and serve. Lower layers (messages,
monitor, backends, bus) import `homehelper.actors.runtime` directly.
"""

from .runtime import *  # noqa: F403 - the runtime's names, listed once in its __all__
from .runtime import __all__ as __all__
