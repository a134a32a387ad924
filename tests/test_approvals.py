"""The approval store: the exact list per app, written atomically, read back damage-tolerantly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from homehelper.approvals import FILE_NAME, ApprovalStore, describe, load, normalize


async def test_an_approval_is_the_exact_list_and_survives_a_restart(state_root: Path) -> None:
    store = await ApprovalStore.open(state_root / "registry")
    assert store.is_approved("plain", ())  # nothing asked, nothing to approve
    assert not store.is_approved("gpio-app", ("gpio", "/dev/ttyUSB0"))
    await store.approve("gpio-app", ("gpio", "/dev/ttyUSB0", "gpio"))
    assert store.is_approved("gpio-app", ("/dev/ttyUSB0", "gpio"))  # order and repeats do not matter
    assert not store.is_approved("gpio-app", ("gpio",))  # less is a different list: asked again
    assert not store.is_approved("gpio-app", ("gpio", "i2c", "/dev/ttyUSB0"))  # and so is more
    assert not store.is_approved("other-app", ("gpio", "/dev/ttyUSB0"))  # per app
    path = state_root / "registry" / FILE_NAME
    assert json.loads(path.read_text()) == {"gpio-app": {"grants": ["/dev/ttyUSB0", "gpio"]}}
    assert not list(path.parent.glob(".*tmp"))  # the atomic write left no temp file
    again = await ApprovalStore.open(state_root / "registry")
    assert again.is_approved("gpio-app", ("gpio", "/dev/ttyUSB0"))


@pytest.mark.parametrize("content", [b"", b"{not json", b"\xff\xfe", b"[1, 2]", b'"text"', b"null"])
def test_a_damaged_file_loads_as_no_approvals(tmp_path: Path, content: bytes,
                                              caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / FILE_NAME
    path.write_bytes(content)
    assert load(path) == {}
    assert "damaged" in caplog.text


def test_a_damaged_entry_loses_only_itself(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    path.write_text(json.dumps({"good": {"grants": ["lan", "gpio"]}, "bad-type": {"grants": "gpio"},
                                "bad-item": {"grants": ["gpio", 3]}, "not-a-dict": ["gpio"]}))
    assert load(path) == {"good": ("gpio", "lan")}


async def test_a_later_approval_keeps_the_others(state_root: Path) -> None:
    registry = state_root / "registry"
    registry.mkdir()
    (registry / FILE_NAME).write_text(json.dumps({"a": {"grants": ["usb"]}, "broken": 7}))
    store = await ApprovalStore.open(registry)
    await store.approve("b", ["lan"])
    assert json.loads((registry / FILE_NAME).read_text()) == {"a": {"grants": ["usb"]}, "b": {"grants": ["lan"]}}


def test_helpers() -> None:
    assert normalize(["lan", "gpio", "lan"]) == ("gpio", "lan")
    assert describe(("gpio", "/dev/i2c-1")) == "gpio, /dev/i2c-1" and describe(()) == "nothing"
