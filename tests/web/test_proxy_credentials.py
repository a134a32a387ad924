"""HomeHelper's credentials never reach an app behind the proxy (HTTP and websocket), and an app
cannot set HomeHelper's cookies. Real echo apps: a plain HTTP server and a Streamlit script."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any

import pytest

from homehelper.actors.readmodel import AppRecord
from tests.fixtures.streamlit import tree_factory
from tests.web.test_proxy import enter_app, logged_in, open_app, rerun_until_text, ws_base, ws_connect, ws_headers


@pytest.fixture
def make_tree(state_root: Any) -> Any:
    return tree_factory(state_root)


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers with the request's headers as JSON, and tries to plant a dashboard session."""

    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "headers": [[k, v] for k, v in self.headers.items()]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", "hh_session=planted; Path=/")
        self.send_header("Set-Cookie", "hh_app_x=planted; Path=/")
        self.send_header("Set-Cookie", "own=kept; Path=/")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


ECHO_APP = """\
import json
import streamlit as st

st.code("ECHO " + json.dumps({"headers": dict(st.context.headers), "cookies": dict(st.context.cookies)}))
"""


async def test_http_requests_reach_the_app_without_our_credentials(make_tree):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        async with make_tree(web=True) as tree:
            tree.web.extensions["homehelper"].view.records["echo"] = AppRecord(
                "echo", "echo", "service", "echo", "", state="running", port=server.server_address[1], ui="/")
            token = tree.web.extensions["homehelper"].auth.create_token("script")["token"]
            client = await logged_in(tree)
            csrf = client.headers["X-CSRF-Token"]
            session = client.cookies["hh_session"]
            appc = await enter_app(client, "echo")
            appc.headers["X-CSRF-Token"] = csrf
            r = await appc.get("/apps/echo/ui/x?q=1", headers={
                "Authorization": f"Bearer {token}", "Cookie": f"hh_session={session}; own=1; hh_app_echo=t"})
            assert r.status_code == 200, r.text
            seen = {k.lower(): v for k, v in r.json()["headers"]}
            text = json.dumps(r.json())
            for secret in (token, csrf, session, "hh_app_echo"):
                assert secret not in text
            assert "authorization" not in seen and "x-csrf-token" not in seen
            assert seen["cookie"] == "own=1"  # the app's own cookie still reaches it
            assert r.json()["path"] == "/x?q=1"
            # the app's own Authorization (not a HomeHelper token) passes
            r = await appc.get("/apps/echo/ui/", headers={"Authorization": "Basic dTpw"})
            assert dict((k.lower(), v) for k, v in r.json()["headers"])["authorization"] == "Basic dTpw"
            # an app cannot set (or clear) HomeHelper's cookies in the browser
            planted = r.headers.get_list("set-cookie")
            assert planted == ["own=kept; Path=/"]
            app_cookie = next(v for k, v in appc.cookies.items() if k == "hh_app")
            r = await appc.get("/apps/echo/ui/")  # the app cookie lets in, and is not passed on
            assert r.status_code == 200 and app_cookie not in r.text and "hh_app" not in r.text
            await appc.aclose()
            await client.aclose()
    finally:
        server.shutdown()
        server.server_close()


async def test_websockets_reach_the_app_without_our_credentials(make_tree):
    async with make_tree(apps=(("wsecho", ECHO_APP),), web=True) as tree:
        token = tree.web.extensions["homehelper"].auth.create_token("script")["token"]
        client = await logged_in(tree)
        await open_app(client, "wsecho")
        appc = await enter_app(client, "wsecho")
        csrf = client.headers["X-CSRF-Token"]
        session = client.cookies["hh_session"]
        app_cookie = appc.cookies["hh_app"]
        headers = [*ws_headers(appc), (b"authorization", f"Bearer {token}".encode()),
                   (b"x-csrf-token", csrf.encode())]
        headers = [(n, v + f"; own=1; hh_app_wsecho=t; hh_session={session}".encode()) if n == b"cookie" else (n, v)
                   for n, v in headers]
        url = ws_base(appc) + "/apps/wsecho/ui/_stcore/stream"
        async with ws_connect(url, headers, ["streamlit"]) as ws:
            seen = "".join(await rerun_until_text(ws, "ECHO "))
        assert "own" in seen  # the echo ran and shows the app's own cookie
        for secret in (token, csrf, session, app_cookie, "hh_app", "hh_session"):
            assert secret not in seen
        await appc.aclose()
        await client.aclose()
