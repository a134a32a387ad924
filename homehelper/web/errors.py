"""The one place where an exception becomes an HTTP status and a JSON body (REST and websocket)."""

from __future__ import annotations

import logging
from typing import Any

from werkzeug.exceptions import HTTPException

from ..actors import ActorCrashed, ActorTimeout, MailboxClosed, MailboxFull, UnknownChild
from ..errors import HomeHelperError

log = logging.getLogger(__name__)


def translate(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """(status, body) for any error the web layer can meet; the body always names what was wrong."""
    match exc:
        case HomeHelperError():
            return exc.status, exc.to_json()
        case ActorCrashed():
            # the actor crashed on this request (its supervisor restarts it): a server fault, said plainly
            log.warning("request crashed an actor: %s", exc)
            inner = exc.__cause__ or getattr(exc, "error", None)
            detail = {"detail": {"cause": repr(inner)}} if inner is not None else {}
            return 500, {"error": "actor_crashed", "message": str(exc), **detail}
        case UnknownChild():
            return 404, {"error": "unknown_app", "message": f"no app with id {exc.name!r}", "detail": {"app": exc.name}}
        case ActorTimeout() | MailboxClosed() | MailboxFull():
            return 503, {"error": "unavailable", "message": f"busy or restarting, try again: {exc}"}
        case HTTPException():
            code = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                    405: "method_not_allowed", 413: "too_large"}.get(exc.code or 500, "http_error")
            return exc.code or 500, {"error": code, "message": exc.description or exc.name}
        case _:
            log.exception("unexpected error in the web layer", exc_info=exc)
            return 500, {"error": "internal_error", "message": f"{type(exc).__name__}: {exc}"}
