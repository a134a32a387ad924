"""The manifest validator and the shipped JSON Schema agree."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from homehelper.errors import ManifestError
from homehelper.manifest import _TOP, SCHEMA_PATH, Manifest, load_manifest, parse_manifest

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads(SCHEMA_PATH.read_text())


def test_schema_lists_exactly_the_fields_the_validator_knows() -> None:
    assert set(SCHEMA["properties"]) == _TOP


def test_every_example_app_is_valid_by_both() -> None:
    folders = [p.parent for p in (REPO / "apps").glob("*/homehelper.json")]
    assert {load_manifest(f, REPO / "apps").type for f in folders} == {"service", "streamlit", "job"}
    for f in folders:
        jsonschema.validate(json.loads((f / "homehelper.json").read_text()), SCHEMA)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"type": "service"}, "id"),
        ({"id": "a", "type": "service", "health": {"interval": 0}}, "health.interval"),
        ({"id": "a", "type": "service", "resources": {"memory_mb": "lots"}}, "resources.memory_mb"),
        ({"id": "a", "type": "service", "autostart": "yes"}, "autostart"),
        ({"id": "a", "type": "service", "setup": ["ok", ""]}, "setup"),
        ({"id": "a", "type": "service", "ui": "http://x"}, "ui"),
        ({"id": "a", "type": "service", "colour": "red"}, "colour"),
        ({"id": "a", "type": "service", "ttl": True}, "ttl"),
        # Control characters would add directives to the app's unit (issue 12.1).
        ({"id": "a\n", "type": "service"}, "id"),
        ({"id": "a", "type": "service", "name": "x\nExecStartPre=+/bin/sh -c id"}, "name"),
        ({"id": "a", "type": "service", "description": "x\rReadWritePaths=/"}, "description"),
        ({"id": "a", "type": "service", "version": "1\u2028"}, "version"),
        ({"id": "a", "type": "service", "env": {"MODE": "a\u0000b"}}, "env.MODE"),
        ({"id": "a", "type": "service", "env": {"MODE\n": "x"}}, "env.'MODE\\n'"),
        ({"id": "a", "type": "service", "setup": ["echo\u0085hi"]}, "setup[0]"),
        ({"id": "a", "type": "service", "health": {"path": "/h\nx"}}, "health.path"),
        ({"id": "a", "type": "service", "ui": "/ui\t"}, "ui"),
    ],
)
def test_each_bad_field_is_named_by_both(tmp_path: Path, raw: dict, field: str) -> None:
    (tmp_path / "main.py").write_text("")
    with pytest.raises(ManifestError) as exc:
        parse_manifest(json.dumps(raw).encode(), tmp_path)
    assert any(e.startswith(f"{field}:") for e in exc.value.errors), exc.value.errors
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(raw, SCHEMA)


def test_defaults_and_requirements_detection(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("")
    (tmp_path / "requirements.txt").write_text("attrs\n")
    m = parse_manifest(b'{"id": "ui", "type": "streamlit", "env": {"MODE": "demo"}}', tmp_path)
    assert isinstance(m, Manifest)
    assert (m.entry, m.requirements, m.ttl, m.name) == ("app.py", "requirements.txt", 300.0, "ui")
    assert dict(m.env) == {"MODE": "demo"} and len(m.digest) == 64
    assert m.to_json()["health"]["path"] == "/health"


def test_a_streamlit_app_gets_512_mb_unless_its_manifest_says_otherwise(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("")
    (tmp_path / "main.py").write_text("")
    streamlit = parse_manifest(b'{"id": "ui", "type": "streamlit"}', tmp_path)
    assert streamlit.resources.memory_mb == 512 and streamlit.resources.cpu_percent == 50
    asked = parse_manifest(b'{"id": "ui", "type": "streamlit", "resources": {"memory_mb": 256}}', tmp_path)
    assert asked.resources.memory_mb == 256  # said explicitly: kept, even when it is the service default
    assert parse_manifest(b'{"id": "svc", "type": "service"}', tmp_path).resources.memory_mb == 256


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as exc:
        parse_manifest(b'{"id": "A B", "type": "cron", "entry": "/etc/passwd"}', tmp_path)
    fields = sorted(e.split(":")[0] for e in exc.value.errors)
    assert fields == ["entry", "id", "type"]


@pytest.mark.parametrize("field", ["name", "description"])
def test_a_name_ending_in_a_backslash_is_refused(tmp_path: Path, field: str) -> None:
    """A unit line ending in a backslash runs on into the next line and swallows its directive."""
    (tmp_path / "main.py").write_text("")
    with pytest.raises(ManifestError) as exc:
        parse_manifest(json.dumps({"id": "a", "type": "service", field: "sneaky \\"}).encode(), tmp_path)
    assert any(e.startswith(f"{field}:") for e in exc.value.errors), exc.value.errors


def test_a_control_character_is_named_with_its_field(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("")
    raw = {"id": "a", "type": "service", "env": {"TOKEN": "x\u0000y"}, "setup": ["ok", "b\rc"]}
    with pytest.raises(ManifestError) as exc:
        parse_manifest(json.dumps(raw).encode(), tmp_path)
    assert "env.TOKEN: contains the control character U+0000; values must be printable text" in exc.value.errors
    assert any(e.startswith("setup[1]: contains the control character U+000D") for e in exc.value.errors)
