"""The scanner and registry on real folders with good and bad manifests."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import attrs

from homehelper.actors.scanner import scan_folder
from homehelper.backends import ProcessBackend
from homehelper.config import load_config
from homehelper.messages import AppDiscovered, AppInvalid, AppRemoved, GetApp, ListApps, ManifestChanged, Rescan
from tests.fixtures.tree import open_tree


def make_app(apps: Path, folder: str, manifest: Any, entry: str = "main.py") -> Path:
    d = apps / folder
    d.mkdir(parents=True, exist_ok=True)
    (d / entry).write_text("print('hi')\n")
    (d / "homehelper.json").write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    return d


def test_one_bad_manifest_never_stops_the_scan(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    make_app(apps, "good", {"id": "good", "name": "Good", "type": "service"})
    make_app(apps, "ui", {"id": "ui", "name": "UI", "type": "streamlit"}, entry="app.py")
    make_app(apps, "broken-json", '{"id": "x", ')
    make_app(apps, "wrong-types", {"id": "wt", "type": "service", "ttl": "long", "env": {"A": 1}})
    make_app(apps, "unknown-type", {"id": "ut", "type": "daemon"})
    make_app(apps, "escape", {"id": "esc", "type": "service", "entry": "../good/main.py"})
    make_app(apps, "bad-id", {"id": "../etc", "type": "service"})
    make_app(apps, "dup", {"id": "good", "type": "service"})
    make_app(apps, "huge", json.dumps({"id": "huge", "type": "service", "description": "x" * 3_000_000}))
    outside = tmp_path / "outside"
    make_app(outside, "evil", {"id": "evil", "type": "service"})
    os.symlink(outside / "evil", apps / "linked")
    (apps / "not-an-app").mkdir()

    manifests, invalid = scan_folder(apps)
    assert sorted(m.id for m in manifests) == ["good", "ui"]
    assert set(invalid) == {"broken-json", "wrong-types", "unknown-type", "escape", "bad-id", "dup", "huge", "linked"}
    assert "not valid JSON" in invalid["broken-json"][0]
    assert any(e.startswith("ttl: must be a number") for e in invalid["wrong-types"])
    assert any(e.startswith("env.A: must be a string") for e in invalid["wrong-types"])
    assert any("'service', 'streamlit' or 'job'" in e for e in invalid["unknown-type"])
    assert any(e.startswith("entry:") for e in invalid["escape"])
    assert any(e.startswith("id:") for e in invalid["bad-id"])
    assert "already used by good/" in invalid["dup"][0]
    assert "limit is 65536" in invalid["huge"][0]
    assert "outside" in invalid["linked"][0]




async def test_scan_rescan_reports_discovered_changed_removed_invalid(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    make_app(apps, "a", {"id": "a", "name": "A", "type": "service"})
    make_app(apps, "b", {"id": "b", "type": "service"})
    config = attrs.evolve(load_config(tmp_path / "state", environ={}), apps_dir=apps)
    async with open_tree(config, backend=ProcessBackend(config.run_dir / "procs")) as (rt, recorder):
        app_sup, scanner, registry = rt.apps, rt.refs["scanner"], rt.refs["registry"]
        assert len(await registry.ask(ListApps())) == 2
        assert sorted(app_sup.children()) == ["a", "b"]

        # change a, remove b, add c, break d
        make_app(apps, "a", {"id": "a", "name": "A renamed", "type": "service"})
        (apps / "b" / "homehelper.json").unlink()
        make_app(apps, "c", {"id": "c", "type": "service"})
        make_app(apps, "d", {"id": "d", "type": "service", "restart": {"policy": "sometimes"}})
        summary = await scanner.ask(Rescan())
        assert summary == {"discovered": ["c"], "changed": ["a"], "removed": ["b"], "invalid": ["d"]}
        listed = {a["id"]: a for a in await registry.ask(ListApps())}
        assert listed["a"]["name"] == "A renamed"
        assert "b" not in listed and "b" not in app_sup
        assert listed["d"]["state"] == "invalid"
        assert listed["d"]["errors"] == ["restart.policy: must be one of always, on-failure, no, got 'sometimes'"]
        assert (await registry.ask(GetApp("c")))["state"] == "stopped"
        # the app actors answer for themselves too
        assert (await app_sup.ref("c").ask(GetApp("c")))["state"] == "stopped"
    kinds = [type(e) for e in recorder.events]
    assert kinds.count(AppDiscovered) == 3 and kinds.count(ManifestChanged) == 1
    assert kinds.count(AppRemoved) == 1 and kinds.count(AppInvalid) == 1
    saved = json.loads((tmp_path / "state" / "registry" / "apps.json").read_text())
    assert sorted(saved) == ["a", "c"] and saved["a"]["name"] == "A renamed"
