"""An app manifest's `backup` section: what a backup leaves out of its data, and how it is taken.

```json
"backup": {"exclude": ["cache/*", "*.tmp"], "pre": ["python dump.py"], "post": [], "stop": false}
```
`exclude`: globs matched against paths inside the app's data folder (`*` crosses `/`);
`pre` / `post`: shell commands run in the app's folder (in its sandbox) before and after its data
is copied; `stop`: HomeHelper stops the app for the copy and starts it again.
"""

from __future__ import annotations

from typing import Any

import attrs

MAX_GLOBS = 64
MAX_COMMANDS = 8


@attrs.frozen
class BackupSpec:
    exclude: tuple[str, ...] = ()
    pre: tuple[str, ...] = ()
    post: tuple[str, ...] = ()
    stop: bool = False


def parse_backup(raw: dict[str, Any], err: Any) -> BackupSpec:
    """The `backup` section of a manifest's JSON; each problem goes to `err(field, why)`."""
    section = raw.get("backup", {})
    if not isinstance(section, dict):
        err("backup", "must be an object")
        return BackupSpec()
    for key in sorted(set(section) - {"exclude", "pre", "post", "stop"}):
        err(f"backup.{key}", "unknown field")
    out: dict[str, Any] = {}
    for key, limit in (("exclude", MAX_GLOBS), ("pre", MAX_COMMANDS), ("post", MAX_COMMANDS)):
        value = section.get(key, [])
        if not isinstance(value, list) or len(value) > limit or \
                not all(isinstance(v, str) and v.strip() and len(v) <= 1000 for v in value):
            err(f"backup.{key}", f"must be a list of at most {limit} non-empty strings")
            value = []
        elif key == "exclude" and any(v.startswith("/") or ".." in v.split("/") for v in value):
            err("backup.exclude", "globs are paths inside the data folder: no leading '/', no '..'")
            value = []
        out[key] = tuple(value)
    stop = section.get("stop", False)
    if not isinstance(stop, bool):
        err("backup.stop", "must be true or false")
        stop = False
    return BackupSpec(stop=stop, **out)
