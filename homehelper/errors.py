"""One hierarchy for HomeHelper's errors. Each carries the HTTP status the web
layer answers with; `homehelper.web` translates them in one place."""

from __future__ import annotations

from typing import Any


class HomeHelperError(Exception):
    status = 500
    code = "internal_error"
    reply_error = True  # answers an actor's asker instead of crashing the actor

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.detail:
            body["detail"] = self.detail
        return body


class BadRequest(HomeHelperError):
    status = 400
    code = "bad_request"


class ValidationError(BadRequest):
    """A field of a manifest, config or request is wrong; `errors` names each."""

    code = "invalid"

    def __init__(self, message: str, errors: list[str] | None = None, **detail: Any) -> None:
        self.errors = errors or [message]
        super().__init__(message, errors=self.errors, **detail)


class ConfigError(ValidationError):
    code = "bad_config"


class ManifestError(ValidationError):
    code = "bad_manifest"


class Unauthorized(HomeHelperError):
    status = 401
    code = "unauthorized"


class Forbidden(HomeHelperError):
    status = 403
    code = "forbidden"


class NotFound(HomeHelperError):
    status = 404
    code = "not_found"


class UnknownApp(NotFound):
    code = "unknown_app"

    def __init__(self, app_id: str) -> None:
        super().__init__(f"no app with id {app_id!r}", app=app_id)
        self.app_id = app_id


class Conflict(HomeHelperError):
    """The request is fine but the app's state does not allow it now."""

    status = 409
    code = "conflict"


class PayloadTooLarge(HomeHelperError):
    status = 413
    code = "too_large"


class TooManyRequests(HomeHelperError):
    status = 429
    code = "rate_limited"


class Unavailable(HomeHelperError):
    status = 503
    code = "unavailable"


class PortsExhausted(Unavailable):
    code = "ports_exhausted"


class BackendError(HomeHelperError):
    """systemd, a subprocess or an installer failed; `detail` holds its output tail."""

    status = 502
    code = "backend_error"


class DeviceMissing(BackendError):
    """A device the app's manifest names is not on this machine; `detail['devices']` lists them."""

    code = "device_missing"


class UnsafeUnitValue(BackendError):
    """A value would change the meaning of an app's unit file (a new line, a prefix, a separator)."""

    code = "unsafe_unit_value"


class InstallFailed(BackendError):
    """An app's venv, requirements or setup commands failed; `detail['output_tail']` says why."""

    code = "install_failed"


class DiskFull(Unavailable):
    """Free disk is below `monitor.min_free_disk_mb`: installs are refused before they start."""

    code = "disk_full"


class ArchiveRefused(BadRequest):
    """A backup archive that is damaged, tampered with or unsafe to unpack; nothing was changed."""

    code = "archive_refused"


class BackupError(HomeHelperError):
    """A backup could not be written (the folder is missing or full, an app's pre command failed...)."""

    code = "backup_failed"


class SourceFailed(HomeHelperError):
    """git could not fetch an app's source (an unknown ref, an unreachable host, a timeout); nothing changed."""

    status = 502
    code = "source_failed"
