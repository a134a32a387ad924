"""The options schema of a manifest, the user's values, and their files (homehelper/options.py)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import jsonschema
import pytest

from homehelper.errors import ManifestError, ValidationError
from homehelper.manifest import SCHEMA_PATH, parse_manifest
from homehelper.options import effective, parse_cli, read_values, validate, write_values

SCHEMA = json.loads(SCHEMA_PATH.read_text())
OPTIONS = {
    "interval": {"type": "int", "default": 15, "min": 1, "max": 3600, "description": "minutes between readings"},
    "ratio": {"type": "float", "default": 0.5, "min": 0, "max": 1},
    "name": {"type": "string", "default": "kitchen", "min": 1, "max": 20},
    "metric": {"type": "bool", "default": True},
    "units": {"type": "enum", "choices": ["C", "F"], "default": "C"},
    "rooms": {"type": "list", "items": "string", "max": 3, "default": ["hall"]},
    "api_key": {"type": "password", "title": "API key"},
}


def _manifest(tmp_path: Path, options: object):
    (tmp_path / "main.py").write_text("")
    raw = {"id": "weather", "type": "service", "options": options}
    return parse_manifest(json.dumps(raw).encode(), tmp_path), raw


def test_a_manifest_declares_typed_options_in_order(tmp_path: Path) -> None:
    m, raw = _manifest(tmp_path, OPTIONS)
    jsonschema.validate(raw, SCHEMA)
    assert [o.name for o in m.options] == list(OPTIONS)
    by = {o.name: o for o in m.options}
    assert by["interval"].default == 15 and by["interval"].max == 3600
    assert by["units"].choices == ("C", "F") and by["api_key"].secret
    assert effective(m.options, {}) == {"interval": 15, "ratio": 0.5, "name": "kitchen", "metric": True,
                                        "units": "C", "rooms": ["hall"]}  # no password, ever


# What JSON Schema cannot say: a default against its own bounds or choices, min above max.
VALIDATOR_ONLY = ({"x": {"type": "int", "default": 99, "max": 10}}, {"x": {"type": "int", "min": 5, "max": 1}},
                  {"x": {"type": "enum", "choices": ["a"], "default": "b"}})


@pytest.mark.parametrize(("options", "field"), [
    ({"x": {"type": "date"}}, "options.x.type"),
    ({"X": {"type": "int"}}, "options.X"),
    ({"x": {"type": "int", "default": "ten"}}, "options.x.default"),
    ({"x": {"type": "int", "default": 99, "max": 10}}, "options.x.default"),
    ({"x": {"type": "int", "min": 5, "max": 1}}, "options.x.min"),
    ({"x": {"type": "enum"}}, "options.x.choices"),
    ({"x": {"type": "enum", "choices": ["a"], "default": "b"}}, "options.x.default"),
    ({"x": {"type": "password", "default": "hunter2"}}, "options.x.default"),
    ({"x": {"type": "list", "items": "object"}}, "options.x.items"),
    ({"x": {"type": "int", "colour": 1}}, "options.x.colour"),
    ({"x": "int"}, "options.x"),
    ([{"type": "int"}], "options"),
    ({f"o{i}": {"type": "bool"} for i in range(51)}, "options"),
])
def test_each_bad_option_is_named_by_the_validator_and_the_schema(tmp_path: Path, options: object, field: str) -> None:
    with pytest.raises(ManifestError) as exc:
        _manifest(tmp_path, options)
    assert any(e.startswith(f"{field}:") for e in exc.value.errors), exc.value.errors
    if options not in VALIDATOR_ONLY:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"id": "a", "type": "service", "options": options}, SCHEMA)


def test_values_are_checked_all_at_once_naming_each_option(tmp_path: Path) -> None:
    m, _ = _manifest(tmp_path, OPTIONS)
    assert validate(m.options, {"interval": 30, "ratio": 1, "rooms": ["a", "b"], "api_key": "k", "name": None}) == {
        "interval": 30, "ratio": 1.0, "rooms": ["a", "b"], "api_key": "k", "name": None}
    with pytest.raises(ValidationError) as exc:
        validate(m.options, {"interval": 0, "ratio": "half", "metric": 1, "units": "K", "rooms": ["a"] * 4,
                             "name": "x" * 21, "nope": 1, "api_key": 12345})
    named = sorted(e.split(":")[0] for e in exc.value.errors)
    assert named == ["api_key", "interval", "metric", "name", "nope", "ratio", "rooms", "units"]
    assert "12345" not in exc.value.message  # a password is never echoed, even a wrong one
    assert "from 1 to 3600" in exc.value.message
    with pytest.raises(ValidationError, match="interval: must be an integer"):
        validate(m.options, {"interval": 2.5})
    with pytest.raises(ValidationError, match="NUL"):
        validate(m.options, {"name": "a\0b"})


def test_a_stored_value_the_schema_no_longer_allows_falls_back_to_the_default(tmp_path: Path) -> None:
    m, _ = _manifest(tmp_path, OPTIONS)
    assert effective(m.options, {"interval": 99999, "units": "F", "gone": 1, "api_key": "x"})["interval"] == 15
    assert effective(m.options, {"units": "F"})["units"] == "F"


def test_command_line_pairs_become_typed_values(tmp_path: Path) -> None:
    m, _ = _manifest(tmp_path, OPTIONS)
    assert parse_cli(m.options, ["interval=30", "ratio=0.25", "metric=no", "rooms=a, b", "name=", "api_key=a=b"]) == {
        "interval": 30, "ratio": 0.25, "metric": False, "rooms": ["a", "b"], "name": "", "api_key": "a=b"}
    assert parse_cli(m.options, ['rooms=["x,y"]', "interval="]) == {"rooms": ["x,y"], "interval": None}
    for bad, named in (("interval=soon", "interval"), ("metric=maybe", "metric"), ("colour=red", "colour"),
                       ("interval", "interval")):
        with pytest.raises(ValidationError, match=named):
            parse_cli(m.options, [bad])


def test_values_files_are_atomic_and_a_damaged_one_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "weather.json"
    write_values(path, {"api_key": "k"}, secret=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_values(path) == {"api_key": "k"}
    assert read_values(tmp_path / "missing.json") == {}
    for damage in (b"{not json", b"[1, 2]", b"\xff\xfe", b" " * (300 * 1024)):
        path.write_bytes(damage)
        assert read_values(path) == {}
        assert not path.exists() and list(path.parent.glob("weather.json.corrupt-*"))
        for f in path.parent.glob("weather.json.corrupt-*"):
            f.unlink()
