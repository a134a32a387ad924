"""Network walls (issue 11.8), on the real systemd user manager and a real redis-server: an app
without `lan`/`internet` reaches neither another app's port nor HomeHelper's API; HomeHelper's
HTTP (proxy, health) still reaches it, and it still speaks on the bus through its relay."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from homehelper.actors.ports import PortAllocator, port_is_free
from homehelper.backends import SystemdBackend, app_spec, netwall
from homehelper.backends.exposure import parse_exposure
from homehelper.backends.httpprobe import probe
from homehelper.bus.acl import AppIdentities
from homehelper.errors import BackendError

from .apps import make_config, wait_until, write_app

pytestmark = [pytest.mark.systemd, pytest.mark.redis]

# Serves its id over HTTP on HH_HOST:HH_PORT (as every app does), tries the ports in TARGETS, and
# does a bus round trip with the SDK: subscribed to its own topic, it publishes and hears itself.
PROBE = """
import json, os, socket, threading, http.server
from homehelper.sdk import Bus, settings
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(os.environ["HH_APP_ID"].encode())
    def log_message(self, *a): pass
server = http.server.HTTPServer((os.environ["HH_HOST"], int(os.environ["HH_PORT"])), H)
threading.Thread(target=server.serve_forever, daemon=True).start()
out = {}
for item in filter(None, os.environ.get("TARGETS", "").split(",")):
    name, port = item.split("=")
    try:
        socket.create_connection(("127.0.0.1", int(port)), timeout=3).close()
        out[name] = "connected"
    except OSError as e:
        out[name] = e.strerror or type(e).__name__
s = settings()
out["scheme"] = s.redis_url.split(":", 1)[0] if s.redis_url else None
try:
    with Bus(s) as bus, bus.subscribe("ping", app=s.app_id) as sub:
        if not bus.enabled:
            raise LookupError("no bus")
        bus.publish("ping", {"n": 1})
        msg = sub.get(timeout=10)
        out["bus"] = msg.data if msg else None
except Exception as e:
    out["bus"] = repr(e)
with open(os.path.join(os.environ["HH_DATA_DIR"], "probe.json"), "w") as f:
    json.dump(out, f)
threading.Event().wait()
"""


async def _result(path: Path) -> dict[str, Any]:
    await wait_until(lambda: path.exists() and path.stat().st_size > 0, timeout=30)
    return dict(json.loads(await trio.Path(path).read_text()))


async def test_a_walled_app_reaches_no_other_port_but_is_reached_and_speaks_on_the_bus(
        systemd_backend: SystemdBackend, state_root: Path, redis: Any) -> None:
    config = make_config(state_root, redis_url=redis.url)
    run = config.run_dir
    backend = SystemdBackend("user", environ=systemd_backend.environ, prefix=systemd_backend.prefix,
                             secrets_at=run / "secrets", bus_at=run / "bus")
    identities = AppIdentities(redis.url, config.node_id)
    api = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]  # stands in for HomeHelper's API port
    api_port = api.socket.getsockname()[1]
    knocks: list[object] = []
    ports = PortAllocator({"service": config.service_ports}, None)  # free ports, as HomeHelper picks them
    port_a, port_b = ports.allocate("ant", "service", set()), ports.allocate("bee", "service", set())

    async def knocked() -> None:
        async with api:
            while True:
                stream = await api.accept()
                knocks.append(stream.socket.getpeername())
                await stream.aclose()

    async with trio.open_nursery() as nursery:
        await nursery.start(backend.run)
        nursery.start_soon(knocked)
        try:
            # B may use the local network: it keeps the host's, so it can knock (the documented trade).
            b = write_app(config.apps_dir, "bee", PROBE, permissions=["lan"], env={"TARGETS": f"api={api_port}"})
            a = write_app(config.apps_dir, "ant", PROBE, env={"TARGETS": f"bee={port_b},api={api_port}"})
            for manifest, port in ((b, port_b), (a, port_a)):
                spec = app_spec(manifest, config, port, Path(sys.executable),
                                secrets=await identities.secrets_for(manifest.id))
                await backend.prepare(spec)
                await backend.start(manifest.id)
                if manifest is b:
                    assert (await _result(config.data_dir("bee") / "probe.json"))["api"] == "connected"
                    knocks.clear()
            ant = await _result(config.data_dir("ant") / "probe.json")
            assert ant["bee"] == "Connection refused" and ant["api"] == "Connection refused", ant
            assert knocks == []  # nothing from A reached the API listener
            assert ant["scheme"] == "unix" and ant["bus"] == {"n": 1}, ant  # its own ACL user, through the relay
            status = await backend.status("ant")
            assert status.pid is not None and netwall.same_netns(status.pid) is False
            # portshim became the app: the unit's main process is the app's own program
            cmdline = (await trio.Path(f"/proc/{status.pid}/cmdline").read_bytes()).split(b"\0")
            assert str(a.entry_path).encode() in cmdline and not any(b"portshim" in c for c in cmdline)
            # HomeHelper's side: the dashboard proxy and health checks reach both apps on their ports.
            async with httpx.AsyncClient(timeout=5) as client:
                for app_id, port in (("ant", port_a), ("bee", port_b)):
                    ok, why = await probe(port, "/health")
                    assert ok, (app_id, why)
                    assert (await client.get(f"http://127.0.0.1:{port}/")).text == app_id
        finally:
            for app_id in ("ant", "bee"):
                await backend.remove(app_id)
                await identities.forget(app_id)
            nursery.cancel_scope.cancel()


async def test_companion_units_verify_stop_with_the_app_and_free_the_port(
        systemd_backend: SystemdBackend, systemd_user: Any, state_root: Path) -> None:
    config = make_config(state_root)
    backend = systemd_backend
    ports = PortAllocator({"service": config.service_ports}, None)
    port = ports.allocate("walled", "service", set())
    manifest = write_app(config.apps_dir, "walled", PROBE)
    await backend.prepare(app_spec(manifest, config, port, Path(sys.executable)))
    sock, proxy = (backend.unit_dir / u for u in netwall.companions("walled", backend.prefix))
    verify = await trio.run_process(["systemd-analyze", "--user", "verify", str(sock), str(proxy),
                                     str(backend.unit_dir / backend.unit("walled"))],
                                    env=systemd_user.env, capture_stderr=True, check=False)
    assert verify.returncode == 0, verify.stderr
    assert await backend.managed() == ["walled"]  # the companions are not apps
    await backend.start("walled")
    assert (await _result(config.data_dir("walled") / "probe.json"))["scheme"] is None  # no Redis: bus off
    assert not port_is_free(port)  # the socket unit holds it...
    assert ports.allocate("other", "service", set()) != port  # ...so it is never handed to another app

    def active(unit: Path) -> str:
        return systemd_user.systemctl("is-active", unit.name).stdout.strip()

    assert active(sock) == "active"
    await backend.stop("walled")
    assert (active(sock), active(proxy)) == ("inactive", "inactive") and port_is_free(port)
    # A crash takes them down too (BindsTo=): the port is free for the restart.
    await backend.start("walled")
    status = await backend.status("walled")
    assert status.pid is not None
    os.kill(status.pid, signal.SIGKILL)
    await wait_until(lambda: active(sock) != "active" and port_is_free(port), timeout=10)
    await backend.remove("walled")
    assert not sock.exists() and not proxy.exists() and port_is_free(port)
    assert systemd_user.systemctl("show", "-p", "LoadState", sock.name).stdout.strip() == "LoadState=not-found"


async def test_a_port_change_moves_the_socket(systemd_backend: SystemdBackend, systemd_user: Any,
                                              state_root: Path) -> None:
    config = make_config(state_root)
    ports = PortAllocator({"service": config.service_ports}, None)
    lo = ports.allocate("mover", "service", set())
    manifest = write_app(config.apps_dir, "mover", PROBE)
    await systemd_backend.prepare(app_spec(manifest, config, lo, Path(sys.executable)))
    await systemd_backend.start("mover")
    await _result(config.data_dir("mover") / "probe.json")
    (config.data_dir("mover") / "probe.json").unlink()
    await systemd_backend.stop("mover")
    moved = ports.allocate("mover", "service", {lo})
    await systemd_backend.prepare(app_spec(manifest, config, moved, Path(sys.executable)))
    await systemd_backend.start("mover")
    await _result(config.data_dir("mover") / "probe.json")
    async with httpx.AsyncClient(timeout=5) as client:
        assert (await client.get(f"http://127.0.0.1:{moved}/")).text == "mover"
    assert port_is_free(lo)
    await systemd_backend.remove("mover")


async def test_the_wall_lowers_the_apps_exposure_and_the_proxy_is_sandboxed_too(
        systemd_backend: SystemdBackend, systemd_user: Any, state_root: Path) -> None:
    config = make_config(state_root)
    for app_id, perms in (("walled", {}), ("open", {"permissions": ["lan"]})):
        manifest = write_app(config.apps_dir, app_id, PROBE, **perms)
        await systemd_backend.prepare(app_spec(manifest, config, config.service_ports[0], Path(sys.executable)))
    scores = {}
    for unit in (systemd_backend.unit("walled"), systemd_backend.unit("open"),
                 netwall.proxy_unit("walled", systemd_backend.prefix)):
        proc = await trio.run_process(["systemd-analyze", "--user", "security", "--no-pager", unit],
                                      env=systemd_user.env, capture_stdout=True, check=False)
        found = parse_exposure(proc.stdout.decode(), unit)
        assert found is not None, proc.stdout.decode()[-500:]
        scores[unit] = found[0]
    print("exposure:", scores)  # docs/services.md records these
    walled, open_, proxy = scores.values()
    assert walled <= 1.0 and walled < open_ and proxy <= 2.0


async def test_a_wall_the_manager_did_not_build_stops_the_app(systemd_backend: SystemdBackend,
                                                              systemd_user: Any, state_root: Path) -> None:
    """A manager without the right to make namespaces only logs "ignoring" and runs the app on the
    host's network: here the unit loses its PrivateNetwork= behind HomeHelper's back, as if so."""
    config = make_config(state_root)
    manifest = write_app(config.apps_dir, "leaky", PROBE)
    await systemd_backend.prepare(app_spec(manifest, config, config.service_ports[0], Path(sys.executable)))
    path = systemd_backend.unit_dir / systemd_backend.unit("leaky")
    path.write_text(path.read_text().replace("PrivateNetwork=yes\n", ""))
    await systemd_backend.daemon_reload()
    with pytest.raises(BackendError, match="network of its own"):
        await systemd_backend.start("leaky")
    assert not (await systemd_backend.status("leaky")).running


async def test_a_port_another_program_holds_fails_the_start_with_a_reason(systemd_backend: SystemdBackend,
                                                                          state_root: Path) -> None:
    config = make_config(state_root)
    squatter = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    async with squatter:
        port = squatter.socket.getsockname()[1]
        manifest = write_app(config.apps_dir, "blocked", PROBE)
        await systemd_backend.prepare(app_spec(manifest, config, port, Path(sys.executable)))
        with pytest.raises(BackendError, match="another program listening"):
            await systemd_backend.start("blocked")
        assert not (await systemd_backend.status("blocked")).running
