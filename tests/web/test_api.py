"""The REST API through Quart's test client, over a real actor tree and real app processes."""

from __future__ import annotations

import json
import re

import pytest

from homehelper.messages import AppStarted, ScanApplied
from homehelper.web import create_app
from homehelper.web.ops import ACTIONS
from tests.fixtures.tree import wait_until
from tests.web.conftest import PASSWORD, Tree


@pytest.fixture
async def client(tree: Tree):
    return create_app(tree.deps).test_client()


async def login(client, password: str = PASSWORD) -> str:
    r = await client.post("/login", json={"password": password})
    assert r.status_code == 200, await r.get_data(as_text=True)
    return (await r.get_json())["csrf"]


async def test_without_session_api_is_401_and_pages_redirect(client) -> None:
    for path in ("/api/apps", "/api/apps/app-00", "/api/system", "/api/events", "/api/config", "/api/tokens"):
        r = await client.get(path)
        assert r.status_code == 401, path
        assert (await r.get_json())["error"] == "unauthorized"
    r = await client.post("/api/apps/app-00/start")
    assert r.status_code == 401
    r = await client.get("/")
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")
    r = await client.get("/login")
    assert r.status_code == 200 and 'type="password"' in await r.get_data(as_text=True)
    assert (await client.get("/api/health")).status_code == 200


async def test_login_sets_strict_httponly_cookie(client) -> None:
    r = await client.post("/login", json={"password": "nope nope"})
    assert r.status_code == 401
    r = await client.post("/login", json={"password": PASSWORD})
    cookie = r.headers["Set-Cookie"]
    assert "hh_session=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert (await client.get("/api/apps")).status_code == 200


async def test_form_login_redirects_to_next_on_this_server_only(client) -> None:
    r = await client.post("/login", form={"password": PASSWORD, "next": "//evil.example/"})
    assert r.status_code == 302 and r.headers["Location"] == "/"
    r = await client.post("/login", form={"password": "wrong one", "next": "/"})
    assert r.status_code == 401 and "wrong password" in await r.get_data(as_text=True)


async def test_app_list_and_one_app(client, tree: Tree) -> None:
    await login(client)
    apps = await (await client.get("/api/apps")).get_json()
    assert [a["id"] for a in apps] == tree.app_ids
    assert {a["state"] for a in apps} == {"stopped"}
    one = await (await client.get("/api/apps/app-01")).get_json()
    assert one["id"] == "app-01" and one["type"] == "service" and "resources" in one
    r = await client.get("/api/apps/no-such-app")
    assert r.status_code == 404 and (await r.get_json())["error"] == "unknown_app"


async def test_start_stop_needs_csrf_and_changes_state(client, tree: Tree) -> None:
    csrf = await login(client)
    r = await client.post("/api/apps/app-00/start")
    assert r.status_code == 403 and "CSRF" in (await r.get_json())["message"]
    r = await client.post("/api/apps/app-00/start", headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403
    assert (await (await client.get("/api/apps/app-00")).get_json())["state"] == "stopped"  # nothing changed

    r = await client.post("/api/apps/app-00/start", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, await r.get_data(as_text=True)
    body = await r.get_json()
    assert body["app"]["state"] == "running" and body["app"]["port"] is not None
    r = await client.post("/api/apps/app-00/start", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and (await r.get_json())["app"]["state"] == "running"  # already running:
    assert len(tree.recorder.of(AppStarted, "app-00")) == 1  # left alone, not started twice
    r = await client.post("/api/apps/app-00/stop", headers={"X-CSRF-Token": csrf})
    assert (await r.get_json())["app"]["state"] == "stopped"
    kinds = [e["kind"] for e in await (await client.get("/api/events?limit=50")).get_json()]
    assert "app_started" in kinds and "app_stopped" in kinds


async def test_cross_origin_post_refused_even_with_csrf(client) -> None:
    csrf = await login(client)
    r = await client.post("/api/rescan", headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"})
    assert r.status_code == 403


async def test_unknown_action_and_app(client) -> None:
    csrf = await login(client)
    r = await client.post("/api/apps/app-00/explode", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 400 and "unknown action" in (await r.get_json())["message"]
    r = await client.post("/api/apps/ghost/start", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 404


async def test_bad_query_parameters(client) -> None:
    await login(client)
    r = await client.get("/api/events?limit=abc")
    assert r.status_code == 400 and "limit" in (await r.get_json())["message"]
    assert (await client.get("/api/apps/app-00/logs?lines=0")).status_code == 400
    assert (await client.get("/api/apps/app-00/logs?lines=10")).status_code == 200


async def test_config_change_applied_persisted_announced(client, tree: Tree) -> None:
    csrf = await login(client)
    h = {"X-CSRF-Token": csrf}
    r = await client.patch("/api/config", headers=h, json={"log_level": "DEBUG", "streamlit": {"ttl": 60}})
    assert r.status_code == 200, await r.get_data(as_text=True)
    assert (await r.get_json())["streamlit"]["ttl"] == 60.0
    assert tree.deps.config.log_level == "DEBUG"
    saved = json.loads(tree.config.config_file.read_text())
    assert saved == {"log_level": "DEBUG", "streamlit": {"ttl": 60}}
    events = await (await client.get("/api/events?limit=10")).get_json()
    assert events[-1]["kind"] == "config_changed"
    assert events[-1]["changes"] == {"log_level": "DEBUG", "streamlit.ttl": 60}


@pytest.mark.parametrize("body, status, word", [
    (b"{not json", 400, "malformed JSON"),
    (b'{"port": 9}', 400, "cannot be changed while running"),
    (b'{"log_level": "LOUD"}', 400, "must be one of"),
    (b'{"streamlit": {"nope": 1}}', 400, "unknown config key"),
    (b"[]", 400, "JSON object"),
    (b"", 400, "needs a JSON body"),
    (b'{"x": "' + b"a" * 70_000 + b'"}', 413, ""),
])
async def test_bad_config_changes_change_nothing(client, tree: Tree, body: bytes, status: int, word: str) -> None:
    csrf = await login(client)
    before = (await (await client.get("/api/config")).get_json())
    r = await client.patch("/api/config", headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"}, data=body)
    assert r.status_code == status
    err = await r.get_json()
    assert word in err["message"] and err["error"]
    assert await (await client.get("/api/config")).get_json() == before
    assert not tree.config.config_file.exists()


async def test_api_tokens_for_scripts(client, tree: Tree) -> None:
    csrf = await login(client)
    r = await client.post("/api/tokens", headers={"X-CSRF-Token": csrf}, json={"name": "cron"})
    assert r.status_code == 201
    made = await r.get_json()
    script = create_app(tree.deps).test_client()  # no cookie: a script
    bearer = {"Authorization": f"Bearer {made['token']}"}
    assert (await script.get("/api/apps", headers=bearer)).status_code == 200
    r = await script.post("/api/apps/app-02/start", headers=bearer)  # tokens need no CSRF
    assert (await r.get_json())["app"]["state"] == "running"
    await script.post("/api/apps/app-02/stop", headers=bearer)
    r = await script.get("/api/apps", headers={"Authorization": "Bearer hh_wrong"})
    assert r.status_code == 401 and "invalid API token" in (await r.get_json())["message"]
    assert [t["name"] for t in await (await client.get("/api/tokens")).get_json()] == ["cron"]
    r = await client.delete(f"/api/tokens/{made['id']}", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200
    assert (await script.get("/api/apps", headers=bearer)).status_code == 401


async def test_a_token_made_or_revoked_writes_auth_json_off_the_trio_thread(client, tree: Tree,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from homehelper import storage
    from homehelper.web import auth as auth_module

    trio_thread, writes = threading.get_ident(), []
    real = storage.atomic_write_bytes

    def spy(path, data, mode=0o644) -> None:  # type: ignore[no-untyped-def]
        writes.append((path.name, threading.get_ident() == trio_thread))
        real(path, data, mode)

    monkeypatch.setattr(storage, "atomic_write_bytes", spy)
    monkeypatch.setattr(auth_module, "atomic_write_bytes", spy)
    csrf = await login(client)
    made = await (await client.post("/api/tokens", headers={"X-CSRF-Token": csrf}, json={"name": "cron"})).get_json()
    assert (await client.delete(f"/api/tokens/{made['id']}", headers={"X-CSRF-Token": csrf})).status_code == 200
    assert writes == [("auth.json", False), ("auth.json", False)]  # both written, neither on the event loop
    assert "cron" not in auth_module.auth_file(tree.deps.config.root).read_text()


# The process backend dates each line of an app's output (backends/stamp.py).
STAMPED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d .+")


async def test_logs_tail_and_download(client, tree: Tree) -> None:
    csrf = await login(client)
    await client.post("/api/apps/app-00/start", headers={"X-CSRF-Token": csrf})

    async def ticked() -> list[str] | None:  # the app's own process writes the log: nothing to wait on but it
        lines = (await (await client.get("/api/apps/app-00/logs?lines=5")).get_json())["lines"]
        return lines if any(STAMPED.fullmatch(line) and " tick " in line for line in lines) else None

    lines = await wait_until(ticked, timeout=10)
    assert len(lines) <= 5
    r = await client.get("/api/apps/app-00/logs/download")
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    first = (await r.get_data(as_text=True)).splitlines()[0]
    assert STAMPED.fullmatch(first) and first.split(" ", 1)[1].startswith("hello from")


async def test_login_rate_limited(client) -> None:
    for _ in range(5):
        assert (await client.post("/login", json={"password": "guess guess"})).status_code == 401
    r = await client.post("/login", json={"password": PASSWORD})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


async def test_openapi_lists_every_api_route(client, tree: Tree) -> None:
    spec = await (await client.get("/openapi.json")).get_json()
    app = create_app(tree.deps)
    documented = {(p, m.upper()) for p, ops in spec["paths"].items() for m in ops}
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            path = rule.rule.replace("<app_id>", "{app_id}").replace("<token_id>", "{token_id}").replace(
                "<name>", "{name}")
            for m in rule.methods - {"HEAD", "OPTIONS"}:
                if "<action>" in path:
                    served |= {(path.replace("<action>", a), m) for a in ACTIONS}  # every action, documented
                else:
                    served.add((path, m))
    assert served == documented


async def test_pages_carry_a_strict_content_security_policy(client) -> None:
    await login(client)
    for path in ("/", "/login"):
        csp = (await client.get(path)).headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'self'" in csp and "cdn" not in csp.lower()
    assert "Content-Security-Policy" not in (await client.get("/api/apps")).headers


async def test_rescan_finds_a_new_app_and_reports_a_broken_one(client, tree: Tree) -> None:
    from tests.web.conftest import make_apps

    csrf = await login(client)
    make_apps(tree.config.apps_dir, 1, prefix="late")
    (tree.config.apps_dir / "broken").mkdir()
    (tree.config.apps_dir / "broken" / "homehelper.json").write_text('{"id": "Broken!", "type": "service"}')
    mark = len(tree.recorder.events)
    r = await client.post("/api/rescan", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200
    summary = (await r.get_json())["summary"]
    assert summary["discovered"] == ["late-00"] and summary["invalid"] == ["broken"]
    await tree.recorder.wait_after(mark, ScanApplied, timeout=5)  # the registry has taken the rescan in
    r = await client.get("/api/apps/broken")
    assert r.status_code == 200
    broken = await r.get_json()
    assert broken["state"] == "invalid" and any(e.startswith("id:") for e in broken["errors"])
    r = await client.post("/api/apps/broken/start", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 409 and "invalid manifest" in (await r.get_json())["message"]


async def test_open_ui_on_an_app_without_one_is_a_conflict(client) -> None:
    csrf = await login(client)
    r = await client.post("/api/apps/app-00/open", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 409 and (await r.get_json())["error"] == "conflict"
