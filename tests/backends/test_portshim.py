"""portshim.py on its own (no systemd): it becomes the app in the same PID, and its forked
systemd-socket-proxyd carries the app's Unix socket to the app's port, without the app's secrets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from homehelper.actors.ports import port_is_free
from homehelper.backends import netwall

from .apps import wait_until

pytestmark = pytest.mark.skipif(not any(p.exists() for p in netwall.PROXYD), reason="no systemd-socket-proxyd")

APP = """
import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(f"app pid {os.getpid()}".encode())
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def _free_port() -> int:
    for port in range(31000, 31999):
        if port_is_free(port):
            return port
    raise RuntimeError("no free port")


async def test_the_shim_becomes_the_app_and_its_proxy_reaches_the_port(state_root: Path) -> None:
    app = state_root / "app.py"
    app.write_text(APP)
    sock = state_root / "http.sock"
    sock.write_text("left over from the last run")  # replaced, not an error
    port = _free_port()
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-I", str(netwall.SHIM), str(sock), str(port), str(netwall.proxyd()), "--",
         sys.executable, str(app), str(port)],
        env={**os.environ, "HH_REDIS_URL": "redis://u:secret@127.0.0.1/0"}, start_new_session=True)
    try:
        await wait_until(lambda: not port_is_free(port), timeout=15)

        async def get() -> bytes:
            stream = await trio.open_unix_socket(str(sock))
            async with stream:
                await stream.send_all(b"GET / HTTP/1.0\r\n\r\n")
                data = b""
                while chunk := await stream.receive_some(4096):
                    data += chunk
                return data

        reply = await get()
        assert reply.endswith(f"app pid {proc.pid}".encode())  # the app runs in the shim's PID
        cmdline = (await trio.Path(f"/proc/{proc.pid}/cmdline").read_bytes()).split(b"\0")
        assert str(app).encode() in cmdline and not any(b"portshim" in c for c in cmdline)
        children = (await trio.run_process(["pgrep", "-P", str(proc.pid)], capture_stdout=True)).stdout.split()
        assert len(children) == 1
        environ = await trio.Path(f"/proc/{children[0].decode()}/environ").read_bytes()
        assert b"secret" not in environ and b"LISTEN_FDS=1" in environ  # socket activation, no secrets
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


def test_a_bad_command_line_is_refused() -> None:
    out = subprocess.run([sys.executable, "-I", str(netwall.SHIM), "/x.sock", "not-a-port", "/p", "--", "/bin/true"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "usage" in out.stderr
