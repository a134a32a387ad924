"""A Streamlit app's output is its app log, as a service app's: the dashboard's Logs button shows it."""

from __future__ import annotations

from tests.web.test_proxy import enter_app, logged_in, open_app, rerun_until_text, ws_base, ws_connect, ws_headers

SOURCE = """\
import streamlit as st

print("a line from the chatty app", flush=True)
st.title("Hello from chatty")
"""


async def test_the_app_output_shows_in_its_logs_through_the_api(make_tree, state_root):
    async with make_tree(apps=(("chatty", SOURCE),), web=True) as tree:
        client = await logged_in(tree)
        await open_app(client, "chatty")
        appc = await enter_app(client, "chatty")
        async with ws_connect(ws_base(appc) + "/apps/chatty/ui/_stcore/stream", ws_headers(appc),
                              ["streamlit"]) as ws:
            await rerun_until_text(ws, "Hello from chatty")  # the script ran: its print is written
        r = await client.get("/api/apps/chatty/logs?lines=100")
        assert r.status_code == 200
        lines = r.json()["lines"]
        assert any("a line from the chatty app" in line for line in lines), lines
        assert any("Uvicorn server started" in line or "You can now view" in line for line in lines), lines
        download = await client.get("/api/apps/chatty/logs/download")
        assert download.status_code == 200 and "a line from the chatty app" in download.text
        await appc.aclose()
        await client.aclose()
