"""The web layer: dashboard, API, websocket, proxy (Quart-trio on Hypercorn's trio worker)."""

from .app import create_app
from .deps import WebDeps
from .listener import hypercorn_config, serve_app

__all__ = ["WebDeps", "create_app", "hypercorn_config", "serve_app"]
