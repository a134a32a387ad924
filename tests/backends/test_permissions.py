"""Each manifest permission (issue 11.1): a unit with it can do the thing, a unit without it cannot,
on a real systemd user manager; and every combination of permissions is a valid systemd 252 unit."""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import trio

from homehelper.backends import app_spec
from homehelper.backends.sandbox import NODES, resolve_devices
from homehelper.backends.units import render_unit
from homehelper.errors import BackendError, DeviceMissing
from homehelper.manifest import PERMISSIONS

from .apps import make_config, wait_until, write_app

pytestmark = pytest.mark.systemd

PROBE = """
import json, os, socket, sys
out = []
for action in json.loads(sys.argv[1]):
    kind, *args = action
    try:
        if kind == "open":
            os.close(os.open(args[0], os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY))
        elif kind == "read":
            open(args[0]).read(64)
        elif kind == "socket":
            socket.socket(*args).close()
        elif kind == "connect":
            s = socket.create_connection((args[0], args[1]), timeout=3)
            s.close()
        elif kind == "bind":
            s = socket.socket()
            s.bind(("127.0.0.1", args[0]))
            s.close()
        out.append("ok")
    except OSError as e:
        out.append(e.errno or "timeout")
print("RESULT " + json.dumps(out), flush=True)
"""

# Outside PrivateDevices='s own short list (null, zero, full, random, urandom, tty, ptmx): a node of
# one of these major:minor pairs is refused unless the unit allows it.
CANDIDATES = ("/dev/ttyS0", "/dev/hwrng", "/dev/vcs", "/dev/ttyAMA0", "/dev/vcsa", "/dev/kvm")


async def run_probe(backend, state_root: Path, app_id: str, actions: list, port: int = 0, **manifest) -> list:
    """Run PROBE as app `app_id` (HH_PORT `port`, else the config's first) and return its results."""
    config = make_config(state_root)
    m = write_app(config.apps_dir, app_id, PROBE, **manifest)
    spec = app_spec(m, config, port or config.service_ports[0], Path(sys.executable))
    spec = attrs.evolve(spec, argv=(*spec.argv, json.dumps(actions)))
    await backend.prepare(spec)
    await backend.start(app_id)
    log = spec.log_file
    await wait_until(lambda: log.exists() and "RESULT " in log.read_text())
    await backend.stop(app_id)
    return json.loads(log.read_text().split("RESULT ", 1)[1].splitlines()[0])


def _openable(path: str) -> bool:
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY))
        return True
    except OSError:
        return False


@pytest.fixture
def fake_hardware() -> Iterator[dict[str, Path]]:
    """One node per device permission, named as on a Pi (/dev/gpiochip..., /dev/i2c-...), made with the
    major:minor of a real node of this machine that the host can open."""
    if os.geteuid() != 0:
        pytest.skip("making device nodes needs root")
    source = next((c for c in CANDIDATES if os.path.exists(c) and _openable(c)), None)
    if source is None:
        pytest.skip(f"none of {CANDIDATES} opens on this machine")
    rdev = os.stat(source).st_rdev
    tag = uuid.uuid4().hex[:6]
    made: dict[str, Path] = {}
    try:
        for permission, patterns in NODES.items():
            first = patterns[0]
            if first.count("*") != 1 or not first.endswith("*") or first.count("/") != 2:
                continue
            node = Path(first.replace("*", f"hh{tag}"))
            os.mknod(node, 0o600 | 0o020000, rdev)  # S_IFCHR
            made[permission] = node
        yield made
    finally:
        for node in made.values():
            node.unlink(missing_ok=True)


async def test_each_device_permission_opens_its_nodes_and_no_other(systemd_backend, state_root: Path,
                                                                   fake_hardware: dict[str, Path]) -> None:
    actions = [["open", str(node)] for node in fake_hardware.values()]
    assert _openable(str(next(iter(fake_hardware.values()))))  # the host can
    none = await run_probe(systemd_backend, state_root, "bare", actions)
    assert "ok" not in none, none  # the default sandbox opens none of them
    for i, permission in enumerate(fake_hardware):
        got = await run_probe(systemd_backend, state_root, f"p-{permission}", actions, permissions=[permission])
        want = ["ok" if j == i else "refused" for j in range(len(fake_hardware))]
        assert ["ok" if r == "ok" else "refused" for r in got] == want, (permission, got)


@pytest.fixture
def by_id(fake_hardware: dict[str, Path]) -> Iterator[Path]:
    """A /dev/serial/by-id/ link to the fake USB adapter, as udev makes them."""
    folder = Path("/dev/serial/by-id")
    made = [p for p in (folder.parent, folder) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / f"usb-HomeHelper_Test_{fake_hardware['usb'].name}-if00-port0"
    link.symlink_to(os.path.relpath(fake_hardware["usb"], folder))
    yield link
    link.unlink()
    for p in reversed(made):
        p.rmdir()


async def test_a_device_by_path_or_by_id_glob_is_opened_as_asked(systemd_backend, state_root: Path,
                                                                  fake_hardware: dict[str, Path], by_id: Path) -> None:
    node, other = fake_hardware["usb"], fake_hardware["gpio"]
    got = await run_probe(systemd_backend, state_root, "serial", [["open", str(by_id)], ["open", str(node)],
                                                                   ["open", str(other)]],
                          devices=[str(by_id.parent / f"usb-HomeHelper_Test_{node.name}-*")])
    assert got[:2] == ["ok", "ok"] and got[2] != "ok", got
    got = await run_probe(systemd_backend, state_root, "exact", [["open", str(other)], ["open", str(node)]],
                          devices=[str(other)])
    assert got[0] == "ok" and got[1] != "ok", got


async def test_a_missing_device_is_a_clear_error_at_start(systemd_backend, state_root: Path) -> None:
    config = make_config(state_root)
    m = write_app(config.apps_dir, "gone", "pass\n", devices=["/dev/ttyUSB-hh-not-there", "/dev/null"])
    await systemd_backend.prepare(app_spec(m, config, 8100, Path(sys.executable)))
    with pytest.raises(DeviceMissing) as exc:
        await systemd_backend.start("gone")
    assert isinstance(exc.value, BackendError)  # the app actor turns it into config_error, no restart loop
    assert "/dev/ttyUSB-hh-not-there" in exc.value.message and exc.value.detail["devices"] == [
        "/dev/ttyUSB-hh-not-there"]
    assert not (await systemd_backend.status("gone")).loaded  # no unit was written
    with pytest.raises(DeviceMissing):
        resolve_devices(app_spec(m, config, 8100, Path(sys.executable)))


async def test_host_metrics_reads_proc_stat(systemd_backend, state_root: Path) -> None:
    actions = [["read", "/proc/stat"], ["read", "/proc/meminfo"], ["read", "/proc/1/stat"]]
    assert await run_probe(systemd_backend, state_root, "metrics", actions, permissions=["host-metrics"]) == [
        "ok", "ok", "ok"]
    without = await run_probe(systemd_backend, state_root, "nometrics", actions)
    # ProtectProc=invisible hides other users' processes; PID 1 here is the test's own user (root).
    assert without[:2] == [2, 2], without  # ENOENT: ProcSubset=pid leaves only the process folders


async def test_bluetooth_address_family(systemd_backend, state_root: Path) -> None:
    """AF_BLUETOOTH (31), L2CAP seqpacket: the sandbox refuses it (EAFNOSUPPORT) without the permission;
    with it the app gets what the host kernel gives (this test machine's kernel has no Bluetooth, so the
    host, too, answers EAFNOSUPPORT; on a Pi the socket opens)."""
    actions = [["socket", 31, socket.SOCK_SEQPACKET, 0]]
    try:
        socket.socket(31, socket.SOCK_SEQPACKET, 0).close()
        host: object = "ok"
    except OSError as e:
        host = e.errno
    with_it = await run_probe(systemd_backend, state_root, "bt", actions, permissions=["bluetooth"])
    without = await run_probe(systemd_backend, state_root, "nobt", actions)
    assert with_it == [host]
    assert without == [97]  # EAFNOSUPPORT from the seccomp filter
    if host == "ok":
        assert with_it != without


def _host_address() -> str | None:
    """A non-loopback address of this machine, for a connection that leaves 127.0.0.1."""
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5).stdout.split()
    except OSError:
        return None
    return next((a for a in out if "." in a and not a.startswith("127.")), None)


async def test_only_internet_reaches_beyond_this_machine(systemd_backend, state_root: Path) -> None:
    address = _host_address()
    if address is None:
        pytest.skip("this machine has no address besides 127.0.0.1")
    listener = trio.socket.socket()
    await listener.bind(("0.0.0.0", 0))
    listener.listen()
    port = listener.getsockname()[1]
    actions = [["connect", "127.0.0.1", port], ["connect", address, port]]
    try:
        default = await run_probe(systemd_backend, state_root, "local", actions)
        internet = await run_probe(systemd_backend, state_root, "wide", actions, permissions=["internet"])
    finally:
        listener.close()
    # Without lan or internet an app has a network of its own (Network walls): not even this machine's
    # other ports; with internet, everything.
    assert default[0] != "ok" and default[1] != "ok", default
    assert internet == ["ok", "ok"], internet


async def test_an_app_may_bind_only_its_own_port(systemd_backend, state_root: Path) -> None:
    with trio.socket.socket() as s:  # two ports free now
        await s.bind(("127.0.0.1", 0))
        own = s.getsockname()[1]
    with trio.socket.socket() as s:
        await s.bind(("127.0.0.1", 0))
        other = s.getsockname()[1]
    got = await run_probe(systemd_backend, state_root, "binder", [["bind", own], ["bind", other]], port=own)
    assert got[0] == "ok", got
    if got[1] == "ok":
        pytest.skip("this manager does not enforce SocketBindDeny= (cgroup BPF needs a system manager on "
                    "cgroup v2); docs/services.md says where it holds")
    assert got[1] == 1  # EPERM


def test_every_combination_of_permissions_verifies(systemd_user, state_root: Path) -> None:
    config = make_config(state_root)
    units = state_root / "units"
    units.mkdir()
    paths = []
    for n in range(len(PERMISSIONS) + 1):
        for combo in itertools.combinations(PERMISSIONS, n):
            app_id = "c-" + ("-".join(p[:3] for p in combo) or "none")
            m = write_app(config.apps_dir, app_id, "pass\n", permissions=list(combo), devices=["/dev/null"])
            spec = app_spec(m, config, 8100, Path(sys.executable))
            for user in (None, "root"):
                path = units / f"{app_id}{'-sys' if user else ''}.service"
                path.write_text(render_unit(spec, user=user, nodes=resolve_devices(spec)))
                paths.append((path, user))
    assert len(paths) == 2 ** (len(PERMISSIONS) + 1)
    for user in (None, "root"):
        batch = [str(p) for p, u in paths if u == user]
        for i in range(0, len(batch), 64):
            scope = ["--user"] if user is None else ["--system"]
            out = subprocess.run(["systemd-analyze", "verify", *scope, *batch[i:i + 64]], env=systemd_user.env,
                                 capture_output=True, text=True, timeout=300)
            assert out.returncode == 0, out.stderr[-2000:]
            noise = [line for line in out.stderr.splitlines() if "Unknown key" in line or "gnoring" in line]
            assert not noise, noise[:5]


async def test_every_permission_keeps_the_unit_well_sandboxed(systemd_backend, systemd_user, state_root: Path) -> None:
    """`systemd-analyze security` of the default unit and of one unit per permission (docs/services.md)."""
    config = make_config(state_root)
    scores = {}
    for permission in ("", *PERMISSIONS):
        app_id = f"sec-{permission or 'default'}"
        m = write_app(config.apps_dir, app_id, "pass\n", permissions=[permission] if permission else [])
        await systemd_backend.prepare(app_spec(m, config, 8100, Path(sys.executable)))
        proc = await trio.run_process(["systemd-analyze", "security", "--user", systemd_backend.unit(app_id)],
                                      env=systemd_user.env, capture_stdout=True, capture_stderr=True, check=False)
        scores[permission or "default"] = float(proc.stdout.decode().rsplit(": ", 1)[1].split()[0])
    assert scores["default"] <= 1.5 and max(scores.values()) <= 2.0, scores


async def test_the_app_actor_shows_a_missing_device_as_config_error(systemd_backend, state_root: Path) -> None:
    from homehelper.approvals import ApprovalStore
    from homehelper.messages import AppConfigError, AppStarted, StartApp
    from tests.actors.test_service import harness

    config = make_config(state_root)
    manifest = write_app(config.apps_dir, "serial", "pass\n", devices=["/dev/ttyUSB-hh-unplugged"])
    async with harness(config, systemd_backend) as h:
        store = await ApprovalStore.open(config.registry_dir)  # the user approved the device it asks for
        await store.approve("serial", manifest.grants)
        h.ctx.approvals = store
        ref = h.add(manifest)
        await ref.ask(StartApp("serial"), timeout=60)
        error = (await h.until_event(AppConfigError, "serial"))[0]
        assert "/dev/ttyUSB-hh-unplugged" in error.error
        await trio.sleep(1.5)  # past the first backoff: no retry loop
        snap = await h.state(ref)
        assert snap["state"] == "config_error" and not h.of(AppStarted, "serial")
        assert len(h.of(AppConfigError, "serial")) == 1


def test_network_directives_per_permission(state_root: Path) -> None:
    config = make_config(state_root, redis_url="redis://192.168.1.20:6379/0")

    def lines(*permissions: str) -> list[str]:
        m = write_app(config.apps_dir, "net", "pass\n", permissions=list(permissions))
        # As the app actor hands it over: the app's Redis URL (with its own user) is a secret.
        secrets = (("HH_REDIS_URL", "redis://hh-app.main.net:pw@192.168.1.20:6379/0"),)
        text = render_unit(app_spec(m, config, 8123, Path(sys.executable), secrets=secrets))
        return [x for x in text.splitlines() if x.startswith(("IPAddress", "SocketBind", "RestrictAddress"))]

    assert lines() == ["RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "IPAddressDeny=any",
                       "IPAddressAllow=localhost 192.168.1.20", "SocketBindAllow=tcp:8123", "SocketBindDeny=any"]
    assert lines("lan")[2] == ("IPAddressAllow=localhost 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 fc00::/7 "
                               "link-local multicast 192.168.1.20")
    assert "SocketBindAllow=udp" in lines("lan")
    assert not [x for x in lines("internet") if x.startswith("IPAddress")]
    assert lines("bluetooth")[0] == "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_BLUETOOTH"
