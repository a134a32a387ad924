"""A shared snapshot cut per client: only the sections whose digest the client does not have."""

from __future__ import annotations

import json

from homehelper.web.refreshparts import Parts


def test_the_whole_text_is_the_snapshots_json_and_a_reply_without_have_carries_it() -> None:
    data = {"apps": [{"id": "a", "name": 'q"<>'}], "system": {"cpu": 1.5}, "events": []}
    parts = Parts(data)
    assert json.loads(parts.whole) == data
    reply = json.loads(parts.reply(7))
    assert reply == {"type": "reply", "id": 7, "ok": True, "data": data}


def test_sections_the_client_has_are_left_out_and_all_digests_go_back() -> None:
    parts = Parts({"apps": [1, 2], "system": {"t": 1}})
    digests = json.loads(parts.reply("x", {}))["digests"]
    newer = Parts({"apps": [1, 2], "system": {"t": 2}})
    reply = json.loads(newer.reply("x", digests))
    assert reply["data"] == {"system": {"t": 2}}
    assert reply["digests"]["apps"] == digests["apps"] and reply["digests"]["system"] != digests["system"]
    assert json.loads(newer.reply("x", reply["digests"]))["data"] == {}


def test_a_snapshot_that_is_not_a_dict_is_sent_whole() -> None:
    parts = Parts([{"id": "a"}])
    assert json.loads(parts.reply(1, {"apps": "x"})) == {"type": "reply", "id": 1, "ok": True, "data": [{"id": "a"}]}


def test_a_section_equal_to_the_last_snapshots_is_not_serialised_again() -> None:
    first = Parts({"apps": [{"id": "a", "state": "running"}], "events": [1, 2], "system": {"t": 1}})
    second = Parts({"apps": [{"id": "a", "state": "running"}], "events": [1, 2, 3], "system": {"t": 1}}, first)
    assert first.sections is not None and second.sections is not None
    assert second.sections["apps"] is first.sections["apps"]  # the same text: reused, not made again
    assert second.sections["system"] is first.sections["system"]
    assert json.loads(second.sections["events"]) == [1, 2, 3]
    assert second.digests["events"] != first.digests["events"] and second.digests["apps"] == first.digests["apps"]
    assert json.loads(second.whole) == {"apps": [{"id": "a", "state": "running"}], "events": [1, 2, 3],
                                        "system": {"t": 1}}
    # a changed app is serialised anew, and what the client lacks follows from it
    third = Parts({"apps": [{"id": "a", "state": "stopped"}], "events": [1, 2, 3], "system": {"t": 1}}, second)
    assert json.loads(third.reply(1, json.loads(second.reply(0, {}))["digests"]))["data"] == {
        "apps": [{"id": "a", "state": "stopped"}]}
