"""The app-id rule, one definition (manifest, bus channels, web routes, the SDK): stdlib only, so
`homehelper.sdk` can use it without importing the manifest's dependencies into every app."""

from __future__ import annotations

import re

# Used with fullmatch: `$` alone would accept a trailing newline, which splits a unit's lines.
ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
