"""A shared refresh serialised once, and each client's reply cut from it: only what changed.

A dashboard that sends `"have": {section: digest}` with its refresh (the digests of the last reply
it rendered) gets back only the top-level sections whose content differs, and the digests of all
of them; it keeps the others. Back-to-back refreshes then move a few hundred bytes instead of the
whole snapshot (15-30 KB with 20-40 apps): on a phone over Wi-Fi, and for the server's one thread
sending to twenty clients. A client that sends no `have` gets everything, as before. The server
keeps nothing per client: the digests are of the content, so they stay true across reconnects.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

MAX_HAVE = 16  # sections a client may name; more is not a dashboard


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


class Parts:
    """The JSON text of one snapshot; for a dict, each section's text and digest too."""

    __slots__ = ("_bodies", "data", "digests", "sections", "whole")

    def __init__(self, data: Any, previous: Parts | None = None) -> None:
        """`previous`: the last snapshot of the same kind; a section equal to its own is not
        serialised and hashed again (comparing is several times cheaper, and most refreshes
        change one section or none)."""
        self.data = data
        self.sections: dict[str, str] | None = None
        self.digests: dict[str, str] = {}
        # reply bodies by the sections they carry: twenty dashboards that showed the same snapshot
        # lack the same sections, so one body is joined for all of them (at most 2^sections)
        self._bodies: dict[tuple[str, ...], str] = {}
        if isinstance(data, dict) and all(isinstance(k, str) for k in data):
            old_data, old_sections, old_digests = ({}, {}, {}) if previous is None or previous.sections is None \
                else (previous.data, previous.sections, previous.digests)
            self.sections, self.digests = {}, {}
            for k, v in data.items():
                if k in old_sections and old_data[k] == v:
                    self.sections[k], self.digests[k] = old_sections[k], old_digests[k]
                else:
                    self.sections[k] = text = _dumps(v)
                    self.digests[k] = _digest(text)
            self.whole = "{" + ",".join(f"{_dumps(k)}:{t}" for k, t in self.sections.items()) + "}"
        else:
            self.whole = _dumps(data)

    def reply(self, req_id: Any, have: Any = None) -> str:
        """The reply to one client: everything, or (with `have`) the sections it does not have."""
        head = f'{{"type":"reply","id":{_dumps(req_id)},"ok":true,"data":'
        if self.sections is None or not isinstance(have, dict) or len(have) > MAX_HAVE:
            return f"{head}{self.whole}}}"
        lacking = tuple(k for k in self.sections if have.get(k) != self.digests[k])
        body = self._bodies.get(lacking)
        if body is None:
            changed = ",".join(f"{_dumps(k)}:{self.sections[k]}" for k in lacking)
            body = self._bodies[lacking] = f'{{{changed}}},"digests":{_dumps(self.digests)}}}'
        return head + body
