"""What notifies, its text, and the notify.* config keys: hostile values refused by name, hostile text bounded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from homehelper.config import load_config
from homehelper.errors import ConfigError
from homehelper.messages import AlertRaised, AppConfigError, AppCrashed, ChildQuarantined, CommandFailed
from homehelper.notify_rules import MAX_KEYS, MAX_TEXT, Note, Throttle, describe, split_url, targets, wanted


def test_urls_and_routes_come_from_config_json_and_the_environment(tmp_path: Path) -> None:
    config = load_config(tmp_path, environ={
        "HOMEHELPER_NOTIFY__URLS": "phone=ntfy://ntfy.sh/home json://127.0.0.1:9/x?a=b",
        "HOMEHELPER_NOTIFY__ROUTES": '{"alert_raised": ["phone"]}'})
    assert config.notify.urls == ("phone=ntfy://ntfy.sh/home", "json://127.0.0.1:9/x?a=b")
    assert config.notify.routes == (("alert_raised", ("phone",)),)
    again = load_config(tmp_path, environ={}, overrides={"notify": json.loads(json.dumps(config.to_json()["notify"]))})
    assert again.notify == config.notify  # what GET /api/config shows reads back the same


@pytest.mark.parametrize(("notify", "named"), [
    ({"urls": "not-a-url"}, "notify.urls[0]"),
    ({"urls": ["json://a b"]}, "notify.urls[0]"),
    ({"urls": ["Bad Tag!=json://x/y"]}, "notify.urls[0]"),
    ({"urls": [7]}, "notify.urls[0]"),
    ({"urls": ["json://x/" + "a" * 3000]}, "notify.urls[0]"),
    ({"urls": ["json://x/y"] * 33}, "notify.urls"),
    ({"routes": {"app_started": ["phone"]}}, "app_started"),
    ({"routes": {"alert_raised": "phone"}}, "notify.routes.alert_raised"),
    ({"routes": "{not json"}, "notify.routes"),
    ({"rate_limit": 0}, "notify.rate_limit"),
    ({"min_level": "loud"}, "notify.min_level"),
    ({"dedup_window": -1}, "notify.dedup_window"),
])
def test_bad_notify_values_stop_the_start_naming_the_key(tmp_path: Path, notify: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.").replace("[", r"\[").replace("]", r"\]")):
        load_config(tmp_path, environ={}, overrides={"notify": notify})


def test_tags_are_a_prefix_never_part_of_the_url() -> None:
    assert split_url("phone,mail=ntfy://h/t") == (("phone", "mail"), "ntfy://h/t")
    assert split_url("json://h/p?x=1&y=2") == ((), "json://h/p?x=1&y=2")
    assert split_url("mailto://u:p=w@h") == ((), "mailto://u:p=w@h")
    entries = [(("phone",), "a"), (("mail",), "b"), ((), "c")]
    assert targets("alert_raised", entries, {"alert_raised": ("phone",)}) == [0]
    assert targets("app_crashed", entries, {"alert_raised": ("phone",)}) == [0, 1, 2]
    assert targets("app_crashed", entries, {"app_crashed": ()}) == []  # muted


def test_only_what_a_person_must_know_notifies() -> None:
    assert wanted(AppCrashed("a", 1, 1, 1.0), "warning")
    assert wanted(ChildQuarantined("root", "bridge", 5, 60.0, "boom"), "warning")
    assert not wanted(CommandFailed("a", "StartApp", "already running"), "warning")  # a user's own mistake
    assert not wanted(AlertRaised("cpu", "careful", 70, 65), "warning")
    assert wanted(AlertRaised("cpu", "careful", 70, 65), "careful")
    assert not wanted(AlertRaised("cpu", "warning", 80, 75), "critical")


def test_an_apps_own_text_is_bounded_and_loses_its_control_characters() -> None:
    hostile = "\x1b[31mred\x1b[0m \u202eevil\u202c " + "x" * 10_000
    note = describe(AppConfigError("weather", hostile))
    assert "\x1b" not in note.body and "\u202e" not in note.body
    assert len(note.body) < MAX_TEXT + 60 and note.body.endswith("…")
    assert "weather" in note.title


def test_a_loop_that_goes_on_sends_one_summary_per_window_and_nothing_when_it_stops() -> None:
    t = Throttle(dedup=600, limit=100, period=600)
    note = describe(AppCrashed("flappy", 1, 1, 1.0))
    assert t.offer(note, 0) == [note]
    for s in range(1, 100):
        assert t.offer(note, s) == []
    assert t.next_due() == 600
    [summary] = t.due(600)
    assert "99 more times in the last 10 min" in summary.body
    assert t.offer(note, 700) == []  # the loop goes on: counted in the new window
    assert t.next_due() == 1200
    [again] = t.due(1200)
    assert "1 more time in" in again.body
    assert t.next_due() is None  # stopped: nothing pending, no timer
    assert t.due(1800) == [] and t.seen == {}  # and its entry is forgotten


def test_the_rate_limit_holds_back_then_says_how_many_once_a_slot_frees() -> None:
    t = Throttle(dedup=600, limit=2, period=100)
    notes = [Note("app_crashed", f"k{i}", f"t{i}", "b") for i in range(5)]
    sent = [n for i, n in enumerate(notes) for n in t.offer(n, i)]
    assert [n.title for n in sent] == ["t0", "t1"]
    assert t.next_due() == 100  # when the first slot frees
    assert t.due(50) == []
    [summary] = t.due(100)
    assert "3 more notifications were held back" in summary.body and "3 app crashed" in summary.body


def test_dedup_entries_are_bounded() -> None:
    t = Throttle(dedup=600, limit=10_000, period=1)
    for i in range(MAX_KEYS * 3):
        t.offer(Note("app_crashed", f"k{i}", "t", "b"), float(i))
        t.offer(Note("app_crashed", f"k{i}", "t", "b"), float(i))  # a repeat: pending, cannot just expire
    assert len(t.seen) <= MAX_KEYS
