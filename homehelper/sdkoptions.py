"""What an app reads of its options and secrets (re-exported by homehelper.sdk):

    from homehelper import sdk

    opts = sdk.options()                # {"interval": 10, "rooms": ["kitchen"], ...}: the user's values, else defaults
    key = sdk.secret("api_key")         # a password option: its value, or None until the user sets it

`options()` reads the JSON file in $HH_OPTIONS_FILE; `secret(name)` the file `name` in
$CREDENTIALS_DIRECTORY, the folder systemd gives a unit's credentials (LoadCredential=) and the
process backend sets to the app's own 0600 folder. Both read again at each call; a change of
options restarts the app anyway. Run by hand (neither variable set) they return {} and None.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
MAX_OPTIONS_FILE = 256 * 1024


def options(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The app's options ({} without HH_OPTIONS_FILE). Secrets are never in here: use secret(name)."""
    env = os.environ if environ is None else environ
    path = env.get("HH_OPTIONS_FILE")
    if not path:
        return {}
    with open(path, "rb") as f:
        data = json.loads(f.read(MAX_OPTIONS_FILE + 1))
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data


def secret(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of the password option `name`, None while the user has not set it."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"secret names are option names (lowercase letters, digits, '_'), got {name!r}")
    env = os.environ if environ is None else environ
    folder = env.get("CREDENTIALS_DIRECTORY")
    if not folder:
        return None
    try:
        return (Path(folder) / name).read_text()
    except FileNotFoundError:
        return None
