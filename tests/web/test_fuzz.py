"""Schemathesis against the live server's /openapi.json: no 5xx, answers as documented; and every
documented operation refuses a request without a session or token."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import pytest
import trio

from homehelper.messages import ListApps
from homehelper.web.openapi import spec
from tests.web.conftest import Live

ST = Path(sys.executable).with_name("st")
EXTRA = os.environ.get("HH_ST_EXTRA", "").split()  # e.g. "--report har" when digging into a failure


@pytest.mark.slow
async def test_schemathesis_finds_no_server_errors(live: Live, tmp_path: Path) -> None:
    assert live.tree.deps.auth is not None
    token = live.tree.deps.auth.create_token("fuzz")["token"]
    cmd = [str(ST), "run", f"{live.url}/openapi.json", "--url", live.url,
           "-H", f"Authorization: Bearer {token}", "--generation-with-security-parameters", "false",
           "--checks", "not_a_server_error,status_code_conformance,content_type_conformance",
           "--max-examples", "12", "--seed", "20261126", "--no-shrink", "--generation-database", "none",
           "--phases", "examples,coverage,fuzzing", "--workers", "2", "--max-time", "25",
           "--request-timeout", "20", "--no-color", "--report-dir", str(tmp_path),
           # it would find our own token in GET /api/tokens and revoke it, ending the run's access
           "--exclude-path", "/api/tokens/{token_id}", *EXTRA]
    env = {**os.environ, "SCHEMATHESIS_TELEMETRY": "false", "NO_COLOR": "1"}
    with trio.fail_after(90):
        proc = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False, env=env)
    out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, out[-6000:]
    assert "passed" in out.lower()
    # the server still serves after the storm, and the apps were never touched by junk
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as c:
        r = await c.get(live.url + "/api/apps")
        assert r.status_code == 200 and [a["id"] for a in r.json()] == live.tree.app_ids


async def test_every_operation_needs_a_session(live: Live) -> None:
    doc = spec()
    checked = 0
    async with httpx.AsyncClient(follow_redirects=False) as c:
        for path, ops in doc["paths"].items():
            for method, op in ops.items():
                url = live.url + path.replace("{app_id}", "app-00").replace("{token_id}", "abc")
                r = await c.request(method.upper(), url, json={} if method in ("post", "patch") else None)
                if op.get("security") == []:
                    assert r.status_code == 200, path
                else:
                    assert r.status_code == 401, (method, path, r.status_code)
                    assert r.json()["error"] == "unauthorized"
                    checked += 1
        assert checked >= 18
        r = await c.get(live.url + "/")
        assert r.status_code == 302 and r.headers["location"] == "/login"
        r = await c.get(live.url + "/apps/app-00/ui/")
        assert r.status_code in (302, 401)
    apps = {a["id"]: a["state"] for a in await live.tree.rt.refs["registry"].ask(ListApps())}
    assert set(apps.values()) == {"stopped"}  # nothing was started by anonymous requests
