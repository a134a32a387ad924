"""One HTTP health check of an app on 127.0.0.1: a GET over HTTP/1.0, its status line read.

A health check needs no HTTP client library: the app is on loopback, the request is plain, and
only the status code matters. httpx cost about 2 ms of the trio thread per check here (and a
millisecond per client), more on a Pi, for every app, at every interval and some twenty times
in a start's first second; this costs a connect, one send and a read or two.

What the app answers is untrusted: at most MAX_REPLY bytes are read, the status must be a real
HTTP status line, and the words shown for a failure are cut short. The path is the manifest's,
already checked (an absolute path without control characters); it is percent-encoded here too,
so no byte of it can end the request line.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import trio

MAX_REPLY = 4096
STATUS = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9])[ \r]")
SAFE = "/?&=%:@!$'()*+,;~-._"  # what a path and query keep as they are


def request(port: int, path: str) -> bytes:
    return (f"GET {quote(path, safe=SAFE)} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: HomeHelper\r\n"
            "Connection: close\r\n\r\n").encode("ascii")


async def probe(port: int, path: str = "/health", timeout: float = 5.0) -> tuple[bool, str]:
    """(healthy, why not): a 2xx status is healthy; anything else is named."""
    data = b""
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    try:
        with trio.move_on_after(timeout) as waited:
            await sock.connect(("127.0.0.1", port))
            out = request(port, path)
            while out:
                out = out[await sock.send(out):]
            # a 2xx ends the check at its status line; for another status, the words after it too
            while len(data) < MAX_REPLY and not _ok(data):
                chunk = await sock.recv(MAX_REPLY - len(data))
                if not chunk:
                    break
                data += chunk
    except ConnectionRefusedError:
        return False, f"nothing listens on port {port} yet"
    except OSError as exc:
        return False, f"{type(exc).__name__}: {exc.strerror or exc}"[:200]
    finally:
        sock.close()
    status = STATUS.match(data)
    if status is None:
        if data:
            return False, f"not an HTTP reply: {data[:40].decode('ascii', 'replace')!r}"
        return False, f"no answer within {timeout:g} s" if waited.cancelled_caught else "closed without an answer"
    code = int(status.group(1))
    if 200 <= code < 300:
        return True, ""
    body = data.partition(b"\r\n\r\n")[2]
    return False, f"HTTP {code}: {body[:120].decode('utf-8', 'replace')}"


def _ok(data: bytes) -> bool:
    status = STATUS.match(data)
    return status is not None and status.group(1).startswith(b"2")
