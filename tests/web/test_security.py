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
