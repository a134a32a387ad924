"""Holes closed in the web layer: open redirects after login, DNS rebinding (Host), login floods,
damaged auth files."""

from __future__ import annotations

import pytest

from homehelper.web import create_app
from homehelper.web.app import _safe_next
from tests.web.conftest import PASSWORD, Tree


@pytest.fixture
async def client(tree: Tree):
    return create_app(tree.deps).test_client()


@pytest.mark.parametrize("nxt", [
    "/%09/evil.com", "/\t/evil.com", "/\n/evil.com", "/\r\n/evil.com", " //evil.com", "//evil.com",
    "/\\evil.com", "\\\\evil.com", "/ /evil.com", "https://evil.com/", "javascript:alert(1)", "evil.com",
    "/\x00/evil.com", "/\u3000/evil.com", "/\x7f/evil.com", "", None, "///evil.com",
])
async def test_login_next_only_goes_to_a_path_on_this_server(client, nxt) -> None:
    from urllib.parse import unquote

    decoded = unquote(nxt) if nxt else nxt
    assert _safe_next(decoded) == "/"
    r = await client.post("/login", form={"password": PASSWORD, "next": decoded or ""})
    assert r.status_code == 302 and r.headers["Location"] == "/"


async def test_login_next_keeps_a_plain_path_and_query(client) -> None:
    r = await client.post("/login", form={"password": PASSWORD, "next": "/apps/x/ui/?a=1&b=%2F"})
    assert r.status_code == 302 and r.headers["Location"] == "/apps/x/ui/?a=1&b=%2F"
    page = await client.get("/login?next=/%09/evil.com")  # the form carries a safe next only
    html = await page.get_data(as_text=True)
    assert 'value="/"' in html and "evil" not in html


async def test_dns_rebinding_names_are_refused_even_with_loopback_login(nursery, state_root) -> None:
    import attrs
    import httpx

    from homehelper.config import AuthConfig
    from tests.web.conftest import start_live
    from tests.web.test_proxy import UPGRADE

    live = await start_live(nursery, state_root, 1, allowed_hosts=("pi.home.arpa", ".lan"))
    deps = live.tree.deps
    deps.config = attrs.evolve(deps.config, auth=AuthConfig(loopback_without_login=True))  # read per request
    port = live.url.rsplit(":", 1)[1]
    async with httpx.AsyncClient(base_url=live.url, trust_env=False) as c:
        evil = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
        for method, path, body in (("GET", "/api/config", None), ("POST", "/api/tokens", {"name": "x"}),
                                   ("POST", "/api/apps/app-00/start", None), ("PATCH", "/api/config", {}),
                                   ("GET", "/", None), ("GET", "/apps/app-00/ui/", None)):
            r = await c.request(method, path, headers=evil, json=body)
            assert r.status_code == 421, (method, path, r.status_code)
            assert "allowed_hosts" in r.json()["message"]
        assert (await c.get("/ws", headers={**UPGRADE, **evil})).status_code == 403
        ok = await c.get("/ws", headers={**UPGRADE, "Origin": live.url})  # loopback: no login needed
        assert ok.status_code == 101
        assert (await c.get("/api/tokens", headers={"Host": "rebind.127.0.0.1.nip.io"})).status_code == 421
        for odd in ('x"><script>.localhost', "a b.localhost", "[::1%eth0]", "localhost:80:80"):
            assert (await c.get("/api/config", headers={"Host": odd})).status_code == 421, odd
        # the app origin (app pages) checks Host the same way
        apps = f"http://127.0.0.1:{deps.apps_port}"
        r = await c.get(apps + "/apps/app-00/ui/", headers={"Host": f"evil.example:{deps.apps_port}"})
        assert r.status_code == 421
        # the names this server does answer to
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "pi.home.arpa", "tv.lan",
                     f"{__import__('socket').gethostname()}:{port}", "app.localhost"):
            r = await c.get("/api/config", headers={"Host": host})
            assert r.status_code == 200, (host, r.status_code)
        same = {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"}
        assert (await c.post("/api/tokens", headers=same, json={"name": "ok"})).status_code in (200, 201)


def test_allowed_hosts_and_apps_port_config_keys(tmp_path) -> None:
    from homehelper.config import load_config
    from homehelper.errors import ConfigError

    env = {"HOMEHELPER_ALLOWED_HOSTS": "Pi.Home.Arpa, .lan", "HOMEHELPER_APPS_PORT": "9001"}
    c = load_config(tmp_path, environ=env)
    assert c.allowed_hosts == ("pi.home.arpa", ".lan") and c.apps_port == 9001
    assert load_config(tmp_path, environ={}).apps_port == 0  # 0: port + 1
    for bad in ({"allowed_hosts": [1]}, {"allowed_hosts": "a b"}, {"apps_port": 70000}):
        with pytest.raises(ConfigError) as err:
            load_config(tmp_path, overrides=bad, environ={})
        assert next(iter(bad)) in err.value.message


async def test_a_hundred_parallel_wrong_logins_hash_at_most_the_limit(live) -> None:
    import httpx
    import psutil
    import trio

    me = psutil.Process()  # the live server runs in this process
    auth = live.tree.deps.auth
    limit = auth.limiter.limit
    hashed_before = auth.hashed
    statuses: list[int] = []
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(base_url=live.url, trust_env=False, timeout=60, limits=limits) as c:
        await c.get("/api/health")
        rss_before = me.memory_info().rss

        async def guess(i: int) -> None:
            r = await c.post("/login", json={"password": f"wrong guess {i}"})
            statuses.append(r.status_code)

        async with trio.open_nursery() as n:
            for i in range(100):
                n.start_soon(guess, i)
        rss_after = me.memory_info().rss
        assert auth.hashed - hashed_before <= limit  # counted before hashing, not after
        assert statuses.count(401) <= limit and statuses.count(429) >= 100 - limit
        assert sorted(set(statuses)) in ([401, 429], [429])
        # one scrypt (16 MiB) at a time: not 20 at once (~320 MiB)
        assert rss_after - rss_before < 80 * 1024 * 1024, (rss_before, rss_after)
        r = await c.post("/login", json={"password": PASSWORD})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1  # even the right one, for now


@pytest.mark.parametrize("content, what", [
    ('{"password": {"algo": "scrypt", "n": 16384, "r"', "JSONDecodeError"),
    ('{"tokens": {"id": "x"}}', "'tokens' is not a list"),
    ('{"tokens": [{"id": 1}]}', "'tokens' is not a list"),
    ('{"password": "hunter2"}', "'password' is not a scrypt hash"),
    ('[1, 2]', "not a JSON object"),
    (b"\xff\xfe\x00", "UnicodeDecodeError"),
])
async def test_a_damaged_auth_file_stops_the_start_with_one_line(state_root, content, what) -> None:
    from homehelper.config import load_config
    from homehelper.errors import HomeHelperError
    from homehelper.serve import serve
    from homehelper.web.auth import auth_file

    path = auth_file(state_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)  # type: ignore[operator]
    config = load_config(state_root, environ={})
    with pytest.raises(HomeHelperError) as err:  # plain, not wrapped in an exception group
        await serve(config)
    message = err.value.message
    assert str(path) in message and what in message and "\n" not in message
    assert "move it aside" in message
    assert path.read_bytes() == (content if isinstance(content, bytes) else content.encode())  # untouched


async def test_an_auth_file_damaged_while_running_keeps_the_good_copy(state_root, caplog) -> None:
    from homehelper.web.auth import Auth, auth_file

    auth = Auth(auth_file(state_root), 1)
    auth.set_password("long enough")
    token = auth.create_token("t")["token"]
    auth_file(state_root).write_text("{trunc")
    assert auth.check_token(token)  # the copy read before is kept
    assert "is damaged" in caplog.text


def test_a_cli_token_folder_is_set_aside_and_a_fresh_token_written(state_root) -> None:
    from homehelper.config import load_config
    from homehelper.web.auth import open_auth

    config = load_config(state_root, environ={"HOMEHELPER_PASSWORD": "long enough"})
    token_path = config.run_dir / "cli-token"
    (token_path / "inside").mkdir(parents=True)
    auth = open_auth(config)
    assert token_path.is_file() and auth.check_token(token_path.read_text().strip())
    aside = [p for p in config.run_dir.iterdir() if p.name.startswith("cli-token.corrupt-")]
    assert len(aside) == 1 and (aside[0] / "inside").is_dir()  # set aside, nothing lost


def test_app_tickets_are_single_use_short_lived_and_scoped_to_one_app(state_root) -> None:
    from homehelper.web.auth import TICKET_SECONDS, Auth, auth_file

    now = [1000.0]
    auth = Auth(auth_file(state_root), 1, clock=lambda: now[0])
    auth.set_password("long enough")
    s = auth.login("long enough", "c")
    t = auth.issue_ticket("a", s.sid)
    assert auth.redeem_ticket(t, "b") is None  # another app: refused, and the ticket is spent
    assert auth.redeem_ticket(t, "a") is None
    t = auth.issue_ticket("a", s.sid)
    now[0] += TICKET_SECONDS + 1
    assert auth.redeem_ticket(t, "a") is None  # too late
    sid = auth.redeem_ticket(auth.issue_ticket("a", s.sid), "a")
    assert sid and auth.app_session(sid, "a") and not auth.app_session(sid, "b")
    assert not auth.app_session(s.sid, "a")  # the dashboard's session is not an app cookie
    auth.logout(s.sid)
    assert not auth.app_session(sid, "a")  # logging out of the dashboard closes its app pages too
    orphan = auth.redeem_ticket(auth.issue_ticket("a", None), "a")  # from a token or loopback
    assert orphan and auth.app_session(orphan, "a")
    auth.set_password("another password")
    assert not auth.app_session(orphan, "a")  # a new password ends those too


def test_serve_from_the_cli_raises_a_damaged_auth_file_as_one_plain_error(state_root) -> None:
    from homehelper.config import load_config
    from homehelper.serve import run_forever
    from homehelper.web.auth import AuthFileDamaged, auth_file

    auth_file(state_root).parent.mkdir(parents=True, exist_ok=True)
    auth_file(state_root).write_text('{"tokens": 5}')
    with pytest.raises(AuthFileDamaged) as err:  # not an exception group: the CLI prints it as one line
        run_forever(load_config(state_root, environ={}))
    assert "'tokens' is not a list" in err.value.message
