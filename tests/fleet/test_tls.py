"""A fleet's Redis on another machine: `rediss://` with the house's own CA file, with a real TLS redis-server."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_py

from homehelper.messages import BusConnected, FleetAway
from tests.fixtures.redis import free_port
from tests.fixtures.tree import wait_until

from .conftest import get_fleet, node_config, open_node, statuses
from .test_fleet import _all_online

pytestmark = pytest.mark.redis


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A redis-server that speaks TLS only, with a certificate of a CA made for the test: (port, CA file)."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed")
    ca_key, ca, key, csr, cert = (tmp_path / n for n in ("ca.key", "ca.pem", "r.key", "r.csr", "r.pem"))
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
        "-days", "1", "-subj", "/CN=HomeHelper test CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=hub")
    ext = tmp_path / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "1", "-extfile", str(ext))
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                             "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
                             "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis_py.Redis.from_url(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}")
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis_py.ConnectionError:
                assert time.monotonic() < deadline, "the TLS redis-server did not answer"
                time.sleep(0.05)
        client.close()
        yield port, ca
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_nodes_join_over_tls_with_a_ca_file_and_refuse_a_server_they_cannot_verify(state_root, tls_redis):
    port, ca = tls_redis
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}"
    async with open_node(node_config(state_root / "a", "a", url)) as a, \
            open_node(node_config(state_root / "b", "b", url)) as b:
        await b.recorder.wait(BusConnected)  # the bridge too, over TLS
        fleet = await wait_until(lambda: _all_online(a.url, {"a", "b"}), timeout=30)
        assert set(statuses(fleet)) == {"a", "b"}
        # Without the CA, the certificate cannot be verified: the node stays alone, and says so.
        async with open_node(node_config(state_root / "x", "x", f"rediss://127.0.0.1:{port}/0"), join=False) as x:
            away = (await x.recorder.wait(FleetAway))[0]
            assert "certificate" in away.error.lower() or "ssl" in away.error.lower()
            assert (await get_fleet(x.url))["redis"] == "unknown"
            assert "x" not in statuses(await get_fleet(a.url))
