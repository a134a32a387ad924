"""The composition root: a config change made through the API reaches the running tree."""

from __future__ import annotations

import json
import logging

import httpx
import trio

from homehelper.config import load_config
from homehelper.serve import serve
from tests.fixtures.redis import free_port


async def test_a_config_change_is_validated_persisted_applied_and_announced(state_root) -> None:
    config = load_config(state_root, overrides={"port": free_port(), "auth": {"loopback_without_login": True}},
                         environ={})
    level = logging.getLogger().level
    try:
        async with trio.open_nursery() as nursery:
            rt = await nursery.start(serve, config)
            async with httpx.AsyncClient(base_url=rt.url) as c:
                bad = await c.patch("/api/config", json={"port": 1234})
                assert bad.status_code == 400 and "cannot be changed while running" in bad.json()["message"]
                bad = await c.patch("/api/config", json={"streamlit": {"ttl": "soon"}})
                assert bad.status_code == 400 and "'streamlit.ttl'" in bad.json()["message"]
                assert rt.ctx.config.streamlit.ttl == 300  # a refused change changes nothing
                ok = await c.patch("/api/config", json={"streamlit": {"ttl": 60, "max_running": 1},
                                                         "log_level": "WARNING"})
                assert ok.status_code == 200, ok.text
                assert ok.json()["streamlit"]["ttl"] == 60
                kinds = [e["kind"] for e in (await c.get("/api/events")).json()]
            assert rt.ctx.config.streamlit.ttl == 60  # what app actors and the UI manager read
            assert rt.ctx.config.streamlit.max_running == 1
            assert logging.getLogger().level == logging.WARNING
            assert "config_changed" in kinds
            saved = json.loads(config.config_file.read_text())
            assert saved == {"streamlit": {"ttl": 60, "max_running": 1}, "log_level": "WARNING"}
            nursery.cancel_scope.cancel()
    finally:
        logging.getLogger().setLevel(level)
    assert load_config(state_root, environ={}).streamlit.ttl == 60  # and it survives a restart
