"""The SDK's module-level bus calls (sdk.publish, sdk.subscribe, sdk.status), in real app processes
against a real redis-server, and what importing the SDK costs an app."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.common import REPO


def run_app(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HH_", "NOTIFY"))}
    return subprocess.run([sys.executable, "-c", code], env={**clean, "PYTHONPATH": str(REPO), **env},
                          capture_output=True, text=True, timeout=60, check=True)


def test_importing_the_sdk_loads_none_of_homehelpers_runtime() -> None:
    # Every app imports it at start: on a Pi, trio and attrs alone cost a good part of a second.
    out = run_app("import sys\nfrom homehelper import sdk\n"
                  "print(sorted({m.split('.')[0] for m in sys.modules} & {'trio', 'attrs', 'redis', 'httpx'}))")
    assert out.stdout.strip() == "[]"


@pytest.mark.redis
def test_publish_and_subscribe_at_module_level_share_one_bus(redis, tmp_path: Path) -> None:
    code = """
from homehelper import sdk
sub = sdk.subscribe("greetings", app="greeter")     # exact channel: SUBSCRIBE
every = sdk.subscribe("greetings")                  # any app's: a pattern, matched in the SDK
sent = sdk.publish("greetings", {"text": "hello"})
sdk.publish("other", 1)
got, also = sub.get(timeout=10), every.get(timeout=10)
print(sent, got.app_id, got.topic, got.data["text"], also.app_id, sdk.bus() is sdk.bus())
print(sdk.status("ok", said=1))
"""
    out = run_app(code, HH_APP_ID="greeter", HH_REDIS_URL=redis.url, HH_DATA_DIR=str(tmp_path))
    assert out.stdout.splitlines() == ["2 greeter greetings hello greeter True", "0"]


@pytest.mark.redis
def test_on_calls_a_handler_for_each_message_in_its_own_thread(redis, tmp_path: Path) -> None:
    code = """
import threading
from homehelper import sdk
got, done = [], threading.Event()

@sdk.on("readings", app="greeter")
def reading(msg):
    if msg.data == "bad":
        raise ValueError("a handler that fails on one message")
    got.append((msg.app_id, msg.data, threading.current_thread().name))
    if len(got) == 2:
        done.set()

for data in ("bad", 1, 2):
    sdk.publish("readings", data)
print(done.wait(10), got)
"""
    out = run_app(code, HH_APP_ID="greeter", HH_REDIS_URL=redis.url, HH_DATA_DIR=str(tmp_path))
    assert out.stdout.strip() == "True [('greeter', 1, 'sdk-on-readings'), ('greeter', 2, 'sdk-on-readings')]"
    assert "ValueError: a handler that fails on one message" in out.stderr  # logged, and it carried on


def test_without_redis_the_module_level_calls_do_nothing_and_never_fail(tmp_path: Path) -> None:
    code = """
from homehelper import sdk
sub = sdk.subscribe("greetings")
print(sdk.publish("greetings", {"a": 1}), sdk.status("ok"), sub.get(timeout=0), sdk.bus().enabled)
try:
    sdk.publish("bad:topic", 1)
except ValueError as exc:
    print("refused", "topic" in str(exc))
"""
    out = run_app(code, HH_APP_ID="greeter", HH_DATA_DIR=str(tmp_path))
    assert out.stdout.splitlines() == ["0 0 None False", "refused True"]
