"""The channel scheme: names, and which publications count as an app's."""

from __future__ import annotations

import pytest

from homehelper.bus.channels import Channels, check_app, check_name, check_topic


def test_names_carry_the_node_id():
    ch = Channels("kitchen")
    assert ch.event("app_started") == "homehelper:kitchen:events:app_started"
    assert ch.app_events("lamp") == "homehelper:kitchen:apps:lamp:events"
    assert ch.status("lamp") == "homehelper:kitchen:apps:lamp:status"
    assert ch.heartbeat("lamp") == "homehelper:kitchen:apps:lamp:heartbeat"
    assert ch.topic("lamp", "power.w") == "homehelper:kitchen:apps:lamp:pub:power.w"
    assert ch.stream == "homehelper:kitchen:stream"
    assert ch.health("lamp") == "homehelper:kitchen:health:lamp"
    assert ch.topic_pattern("*") == "homehelper:kitchen:apps:*:pub:*"
    assert ch.topic_pattern("t", "lamp") == "homehelper:kitchen:apps:lamp:pub:t"


@pytest.mark.parametrize("node", ["", "a:b", "a*", "x[1]", "a b"])
def test_bad_node_ids_are_refused(node):
    with pytest.raises(ValueError, match="node id"):
        Channels(node)


def test_parse_inbound():
    ch = Channels()
    status, beat, pub = ch.inbound_patterns
    assert ch.parse_inbound(status, ch.status("lamp")) == ("lamp", "status", "")
    assert ch.parse_inbound(beat, ch.heartbeat("lamp")) == ("lamp", "heartbeat", "")
    assert ch.parse_inbound(pub, ch.topic("lamp", "t.1")) == ("lamp", "pub", "t.1")
    assert ch.parse_inbound(pub, ch.topic("lamp", "sensors/lamp")) == ("lamp", "pub", "sensors/lamp")
    # a topic called "status" matches the status pattern too; only the pub pattern counts
    assert ch.parse_inbound(status, ch.topic("lamp", "status")) is None
    assert ch.parse_inbound(pub, ch.topic("lamp", "status")) == ("lamp", "pub", "status")
    # outside the scheme, other nodes, bad ids, HomeHelper's own channels
    assert ch.parse_inbound(status, "homehelper:other:apps:lamp:status") is None
    assert ch.parse_inbound(status, "homehelper:main:apps:Lamp:status") is None
    assert ch.parse_inbound(pub, "homehelper:main:apps:lamp:pub:a:b") is None
    assert ch.parse_inbound(status, ch.app_events("lamp")) is None


@pytest.mark.parametrize("bad", ["a\n", "weather\n", "a\nb"])
def test_a_trailing_newline_is_not_a_name(bad: str) -> None:
    # `$` matches before a final newline: every name check is a full match.
    for check in (check_app, check_topic, lambda v: check_name("node id", v)):
        with pytest.raises(ValueError):
            check(bad)
