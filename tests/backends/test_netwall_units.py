"""The network wall's unit text (issue 11.8): who gets a private network, the companion units'
text and names, and the app's Redis URL through its relay. No systemd needed."""

from __future__ import annotations

import sys
from pathlib import Path

import attrs
import pytest
import redis

from homehelper.backends import app_spec, netwall
from homehelper.backends.units import render_unit, unit_name
from homehelper.errors import BackendError, UnsafeUnitValue

from .apps import make_config, write_app

PROXYD = Path("/lib/systemd/systemd-socket-proxyd")


def _spec(state_root: Path, permissions: list[str] | None = None, port: int = 8100, app_id: str = "probe"):
    config = make_config(state_root)
    manifest = write_app(config.apps_dir, app_id, "pass\n", **({"permissions": permissions} if permissions else {}))
    return app_spec(manifest, config, port, Path(sys.executable))


@pytest.mark.parametrize(("permissions", "walled"), [(None, True), (["gpio", "host-metrics"], True),
                                                     (["lan"], False), (["internet"], False)])
def test_only_apps_without_lan_or_internet_get_a_private_network(state_root: Path, permissions, walled) -> None:
    spec = _spec(state_root, permissions)
    http = Path("/r/run/http/probe")
    text = render_unit(netwall.wrapped(spec, http, PROXYD),
                       extra=(netwall.unit_lines(spec), netwall.service_lines(spec, Path("/r/run/bus/probe"), http)))
    assert ("PrivateNetwork=yes\n" in text) is walled
    assert ("Requires=hh-probe.proxy.socket\nAfter=hh-probe.proxy.socket\n" in text) is walled
    assert ("BindReadOnlyPaths=/r/run/bus/probe\n" in text) is walled
    assert ("BindPaths=/r/run/http/probe\n" in text) is walled
    shim = (f'ExecStart={spec.argv[0]} "-I" {netwall.SHIM} /r/run/http/probe/http.sock 8100 {PROXYD} "--" '
            f"{spec.argv[0]} ")
    assert (shim in text) is walled
    texts = netwall.companion_texts(spec, http)
    assert all(t is not None for t in texts.values()) is walled
    assert list(texts) == ["hh-probe.proxy.socket", "hh-probe.proxy.service"]


def test_the_companions_listen_on_the_apps_port_and_forward_to_its_http_socket(state_root: Path) -> None:
    spec = _spec(state_root, port=8123)
    sock = netwall.render_socket(spec)
    proxy = netwall.render_proxy(spec, state_root / "run/http/probe", program=PROXYD)
    assert "ListenStream=127.0.0.1:8123\n" in sock and "BindsTo=hh-probe.service\n" in sock
    for line in ("BindsTo=hh-probe.service", "After=hh-probe.service",
                 f"ExecStart={PROXYD} {state_root}/run/http/probe/http.sock", "PrivateNetwork=yes",
                 "NoNewPrivileges=yes", "CapabilityBoundingSet=", "ProtectHome=tmpfs", "PrivateTmp=yes",
                 "TemporaryFileSystem=/run:ro", f"TemporaryFileSystem={state_root}:ro",
                 f"BindReadOnlyPaths={state_root}/run/http/probe"):
        assert f"{line}\n" in proxy
    # Not the man page's JoinsNamespaceOf=: a non-root user manager cannot join another unit's network.
    assert "JoinsNamespaceOf" not in proxy
    # An app cannot own a companion's name: app ids hold no '.'.
    assert "." not in unit_name("probe").removesuffix(".service")
    assert netwall.is_companion("hh-probe.proxy.service") and not netwall.is_companion("hh-probe-proxy.service")


def test_no_port_no_companions(state_root: Path) -> None:
    spec = _spec(state_root, port=0)
    assert set(netwall.companion_texts(spec, Path("/r/h")).values()) == {None}
    assert netwall.wrapped(spec, Path("/r/h"), PROXYD) == spec
    assert netwall.unit_lines(spec) == [] and "PrivateNetwork=yes" in render_unit(spec)


def test_hostile_paths_and_descriptions_are_refused_or_escaped(state_root: Path) -> None:
    spec = _spec(state_root)
    with pytest.raises(UnsafeUnitValue):
        netwall.service_lines(spec, Path("/r/run/bus/x\nExecStartPre=/bin/evil"))
    with pytest.raises(UnsafeUnitValue):
        netwall.service_lines(spec, Path("/r/run/bus:/etc"))
    with pytest.raises(UnsafeUnitValue):
        netwall.render_proxy(spec, Path("/r/h"), program=Path("/bin/x\n[Service]"))
    with pytest.raises(UnsafeUnitValue):
        netwall.render_proxy(spec, Path("/r/h x\nExecStartPre=/bin/evil"), program=PROXYD)


def test_a_port_that_is_not_a_number_makes_no_socket(state_root: Path) -> None:
    spec = attrs.evolve(_spec(state_root), env=(("HH_PORT", "8100\nListenStream=0.0.0.0:22"),))
    assert set(netwall.companion_texts(spec, Path("/r/h")).values()) == {None}
    with pytest.raises(BackendError):
        netwall.render_socket(spec)


@pytest.mark.parametrize(("url", "expected"), [
    ("redis://hh-app.main.a:pw@127.0.0.1:6379/2", "unix://hh-app.main.a:pw@/r/a/redis.sock?db=2"),
    ("redis://127.0.0.1:6379", "unix:///r/a/redis.sock"),
    ("redis://:p%40ss@h:1/0?db=3", "unix://:p%40ss@/r/a/redis.sock?db=3"),
    ("unix://u:p@/var/run/redis.sock?db=1", "unix://u:p@/r/a/redis.sock?db=1"),
    ("redis://u:p@h:1/not-a-db", "unix://u:p@/r/a/redis.sock"),
])
def test_the_apps_url_goes_through_its_relay_with_its_own_credentials(url: str, expected: str) -> None:
    out = netwall.relay_url(url, Path("/r/a/redis.sock"))
    assert out == expected
    kw = redis.connection.parse_url(out)  # what redis-py (and so the SDK) makes of it
    assert kw["path"] == "/r/a/redis.sock"


def test_relay_targets() -> None:
    assert netwall.relay_target("redis://u:p@10.0.0.5:6380/0") == ("10.0.0.5", 6380)
    assert netwall.relay_target("redis://localhost") == ("localhost", 6379)
    assert netwall.relay_target("unix:///var/run/redis/redis.sock") == "/var/run/redis/redis.sock"
    with pytest.raises(BackendError, match="rediss"):
        netwall.relay_target("rediss://u:p@h:6380/0")
