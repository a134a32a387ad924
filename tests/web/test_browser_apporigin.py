"""App pages on their own origin, in a real Chromium: a hostile app page in the dashboard's modal
can reach neither the dashboard's DOM, nor its CSRF token, nor its API; a Streamlit app still
renders and updates there (its websocket goes through the app origin)."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from homehelper.actors.readmodel import AppRecord
from tests.fixtures.browser import screenshot
from tests.fixtures.streamlit import PASSWORD, make_tree  # noqa: F401 - the fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HOSTILE = """<!doctype html><meta charset="utf-8"><title>hostile</title><body>
<pre id="out">running</pre>
<script>
const DASH = "{dash}";
const out = {{}};
function note(k, v) {{ out[k] = v; }}
try {{ note("parentCsrf", "read: " + window.parent.document.querySelector('meta[name=csrf-token]').content); }}
catch (e) {{ note("parentCsrf", "blocked: " + e.name); }}
try {{ note("topCookie", "read: " + window.top.document.cookie); }}
catch (e) {{ note("topCookie", "blocked: " + e.name); }}
note("ownCookie", document.cookie);
const tries = [
  fetch(DASH + "/api/tokens", {{credentials: "include"}}).then(r => r.text()).then(
      t => note("getTokens", "read: " + t), e => note("getTokens", "blocked: " + e.name)),
  fetch(DASH + "/", {{credentials: "include"}}).then(r => r.text()).then(
      t => note("getPage", "read: " + t.slice(0, 80)), e => note("getPage", "blocked: " + e.name)),
  fetch(DASH + "/api/tokens", {{method: "POST", mode: "no-cors", credentials: "include",
      headers: {{"Content-Type": "text/plain"}}, body: JSON.stringify({{name: "stolen"}})}}).then(
      r => note("postTokens", "sent, opaque: " + r.type), e => note("postTokens", "blocked: " + e.name)),
  fetch(DASH + "/apps/other/ui/", {{mode: "no-cors", credentials: "include"}}).then(
      r => note("otherTicket", "sent, opaque: " + r.type), e => note("otherTicket", "blocked: " + e.name)),
  fetch("/api/tokens", {{credentials: "include"}}).then(
      r => note("ownOriginApi", r.status), e => note("ownOriginApi", "blocked: " + e.name)),
];
Promise.all(tries).then(() => {{
  document.getElementById("out").textContent = JSON.stringify(out);
  document.getElementById("out").id = "done";
}});
</script>
"""


def hostile_handler(dash: str) -> type[http.server.BaseHTTPRequestHandler]:
    page = HOSTILE.format(dash=dash).encode()

    class Hostile(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: Any) -> None:
            pass

    return Hostile


def login(b: Any, url: str) -> Any:
    ctx = b.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(30_000)
    page.goto(url + "/login")
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url(url + "/")
    return ctx, page


async def test_a_hostile_app_page_cannot_reach_the_dashboard(browser, make_tree) -> None:  # noqa: F811
    async with make_tree(web=True) as tree:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), hostile_handler(tree.url))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        tree.web.extensions["homehelper"].view.records["hostile"] = AppRecord(
            "hostile", "hostile", "service", "hostile", "", state="running", port=server.server_address[1], ui="/")
        auth = tree.web.extensions["homehelper"].auth
        tickets_before = len(auth.tickets)

        def run(b: Any) -> dict[str, Any]:
            ctx, page = login(b, tree.url)
            try:
                csrf = page.get_attribute('meta[name="csrf-token"]', "content")
                assert csrf
                # the modal, opened on the hostile app's page as the dashboard does it
                page.eval_on_selector("#ui-frame", "f => { document.querySelector('#ui-dialog').showModal();"
                                                   " f.src = '/apps/hostile/ui/'; }")
                frame = page.frame_locator("#ui-frame")
                frame.locator("#done").wait_for()
                result = json.loads(frame.locator("#done").inner_text())
                result["frameUrl"] = next(f.url for f in page.frames if "/apps/hostile/ui/" in f.url)
                result["csrf"] = csrf
                screenshot(page, "dashboard-hostile-app")
                return result
            finally:
                ctx.close()

        try:
            r = await browser.run(run)
        finally:
            server.shutdown()
            server.server_close()
        frame = urlsplit(r["frameUrl"])
        assert frame.netloc != urlsplit(tree.url).netloc  # another origin: another port
        assert r["parentCsrf"] == "blocked: SecurityError" and r["topCookie"] == "blocked: SecurityError"
        assert r["getTokens"] == "blocked: TypeError" and r["getPage"] == "blocked: TypeError"  # no CORS
        csrf = r.pop("csrf")
        assert "hh_" not in r["ownCookie"] and csrf not in json.dumps(r)  # HttpOnly, and nothing leaked
        assert r["ownOriginApi"] == 404  # the app origin serves no API
        assert all(t["name"] != "stolen" for t in auth.tokens())  # the blind POST was refused
        # the blind GET for another app's ticket was refused: the only ticket is the modal's own
        assert len(auth.tickets) <= tickets_before and not any(a.app_id == "other" for a in auth.app_sessions.values())


COUNTER = """\
import streamlit as st

st.title("Counter")
if "n" not in st.session_state:
    st.session_state.n = 0
if st.button("Add one"):
    st.session_state.n += 1
st.write(f"count is {st.session_state.n}")
"""


async def test_streamlit_renders_and_updates_in_the_modal_on_the_app_origin(browser, make_tree) -> None:  # noqa: F811
    async with make_tree(apps=(("counter", COUNTER),), web=True) as tree:

        def run(b: Any) -> str:
            ctx, page = login(b, tree.url)
            try:
                card = page.locator('.card[data-app="counter"]')
                card.locator('[data-do="open"]').click()
                page.wait_for_selector("#ui-dialog[open]")
                expect(page.locator("#ui-frame")).to_have_attribute("sandbox", "allow-scripts allow-forms "
                                                                               "allow-same-origin allow-popups")
                frame = page.frame_locator("#ui-frame")
                frame.get_by_text("count is 0").wait_for()
                frame.get_by_role("button", name="Add one").click()
                frame.get_by_text("count is 1").wait_for()  # a round trip over the proxied websocket
                frame.get_by_role("button", name="Add one").click()
                frame.get_by_text("count is 2").wait_for()
                screenshot(page, "dashboard-streamlit-app-origin")
                return next(f.url for f in page.frames if "/apps/counter/ui/" in f.url)
            finally:
                ctx.close()

        frame_url = await browser.run(run)
        assert urlsplit(frame_url).netloc != urlsplit(tree.url).netloc
        assert urlsplit(frame_url).path == "/apps/counter/ui/"
