"""`homehelper add` and `homehelper update` as real subprocesses against a real `homehelper serve`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.cli.test_approve import serving
from tests.cli.test_cli import hh
from tests.fixtures.redis import free_port
from tests.sources.helpers import GOOD_MAIN, commit, manifest


def test_add_previews_then_installs_and_update_checks_lists_and_switches(tmp_path: Path) -> None:
    apps, root, port = tmp_path / "apps", tmp_path / "state", free_port()
    apps.mkdir()
    repo = tmp_path / "repo"
    v1 = commit(repo, {"hh/homehelper.json": manifest(permissions=["lan"]), "hh/main.py": GOOD_MAIN}, "v1")

    def run(*args: str, **kw: object):
        return hh(*args, "--port", str(port), root=root, **kw)

    with serving(root, apps, port):
        out = run("add", str(repo), "--subdir", "hh")  # not a terminal, no --yes: shown, not installed
        assert out.returncode == 2, out.stderr
        assert "notes: Notes 1.0.0 (service app)" in out.stdout and "asks for: lan" in out.stdout
        assert "pass --yes" in out.stderr and not (apps / "notes").exists()
        out = run("add", str(repo), "--subdir", "hh", "--yes")
        assert out.returncode == 0, out.stderr
        assert f"added notes at {v1[:12]}" in out.stdout and "homehelper approve" in out.stdout
        out = run("add", str(repo), "--subdir", "hh", "--yes")
        assert out.returncode == 1 and "already" in out.stderr

        out = run("update", "notes", "--check")
        assert out.returncode == 0 and out.stdout.strip() == "notes: up to date", out.stderr
        v2 = commit(repo, {"hh/README": "new\n"}, "v2")
        out = run("update", "notes", "--check")
        assert f"{v2[:12]} is available" in out.stdout
        out = run("update", "notes")  # stopped: switched without a health check
        assert out.returncode == 0 and out.stdout.strip() == f"notes: updated to {v2[:12]}", out.stderr
        listed = json.loads(run("update", "notes", "--list", "--json").stdout)
        assert [v["version"] for v in listed["versions"] if v["current"]] == [v2]
        assert listed["source"]["subdir"] == "hh" and listed["source"]["previous"] == v1
        out = run("update", "notes", "--to", v1)
        assert out.returncode == 0 and f"updated to {v1[:12]}" in out.stdout
        assert run("update", "notes", "--auto", "on").returncode == 0
        assert "auto-update on" in run("update", "notes", "--list").stdout
        out = run("add", "ext::sh -c touch% x", "--yes")
        assert out.returncode == 1 and "transport helpers" in out.stderr
        # apps/notes replaced by a plain folder (a restore, a copy by hand): refused before anything stops
        real = (apps / "notes").resolve()
        (apps / "notes").unlink()
        shutil.copytree(real, apps / "notes")
        out = run("update", "notes", "--to", v2)
        assert out.returncode == 1 and "not a version HomeHelper installed" in out.stderr
        assert not (apps / "notes").is_symlink()
