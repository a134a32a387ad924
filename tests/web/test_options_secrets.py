"""A secret set through the API reaches its app, and only its app, on both backends: as a
credential under the real systemd user manager, as a 0600 file in the app's own folder on the
process backend. It is in no unit file, no `systemctl show`, no log, no API answer, no options file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx

from homehelper.backends import ProcessBackend, SystemdBackend
from homehelper.messages import Rescan
from tests.backends.apps import wait_until

from .conftest import start_live

SECRET = "TOPSECRET-4f1c-Pa55"

# Reports what it got through the SDK, then tries to read every path in targets.json (a spy's list).
READER = """
import json, os, pathlib, time
from homehelper import sdk
data = pathlib.Path(os.environ["HH_DATA_DIR"])
def report():
    tried = {}
    targets = pathlib.Path("targets.json")
    for path in json.loads(targets.read_text()) if targets.exists() else []:
        try:
            tried[path] = pathlib.Path(path).read_text()
        except OSError as exc:
            tried[path] = type(exc).__name__
    out = {"options": sdk.options(), "secret": sdk.secret("api_key"), "creds": os.environ.get("CREDENTIALS_DIRECTORY"),
           "env_has_secret": any("TOPSECRET" in v for v in os.environ.values()), "tried": tried, "pid": os.getpid()}
    (data / "seen.tmp").write_text(json.dumps(out))
    os.replace(data / "seen.tmp", data / "seen.json")
report()
print("reader up", flush=True)
while True:
    time.sleep(0.2)
    if (data / "again").exists():
        (data / "again").unlink()
        report()
"""

OPTIONS = {"interval": {"type": "int", "default": 5, "min": 1, "max": 3600},
           "api_key": {"type": "password", "description": "the weather service's key"}}


def _write(apps: Path, app_id: str, **manifest: object) -> Path:
    folder = apps / app_id
    folder.mkdir(parents=True)
    (folder / "main.py").write_text(READER)
    (folder / "homehelper.json").write_text(json.dumps({"id": app_id, "type": "service", **manifest}))
    return folder


def _seen(data: Path) -> dict | None:
    f = data / "seen.json"
    return json.loads(f.read_text()) if f.exists() else None


async def test_a_secret_reaches_only_its_app(any_backend: SystemdBackend | ProcessBackend, nursery,
                                             state_root: Path, request) -> None:
    live = await start_live(nursery, state_root, 1, backend=any_backend)
    config = live.tree.config
    _write(config.apps_dir, "victim", options=OPTIONS)
    spy = _write(config.apps_dir, "spy", options={"api_key": {"type": "password"}})
    await live.tree.deps.scanner.ask(Rescan())
    async with httpx.AsyncClient(base_url=live.url, timeout=60) as client:
        h = {"X-CSRF-Token": await live.login(client)}
        r = await client.put("/api/apps/victim/options", json={"api_key": SECRET, "interval": 7}, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["secrets"] == {"api_key": "set"} and r.json()["values"] == {"interval": 7}
        assert SECRET not in r.text
        assert (await client.post("/api/apps/victim/start", headers=h)).status_code == 200
        seen = await wait_until(lambda: _seen(config.data_dir("victim")), timeout=60)
        assert seen["secret"] == SECRET and seen["options"] == {"interval": 7}
        assert not seen["env_has_secret"]  # a file, never the environment

        # The spy tries every place the secret lives on the host, and where the victim's run sees it.
        targets = [str(config.root / "secrets" / "victim.json"),
                   str(config.run_dir / "credentials" / "victim" / "api_key"),
                   str(Path(seen["creds"]) / "api_key")]
        (spy / "targets.json").write_text(json.dumps(targets))
        assert (await client.post("/api/apps/spy/start", headers=h)).status_code == 200
        spied = await wait_until(lambda: _seen(config.data_dir("spy")), timeout=60)
        assert spied["secret"] is None and not spied["env_has_secret"]  # its own secret is not set
        if isinstance(any_backend, SystemdBackend):  # the walls: the process backend has none (README)
            assert all(SECRET not in v for v in spied["tried"].values()), spied["tried"]
            assert set(spied["tried"].values()) <= {"FileNotFoundError", "PermissionError"}, spied["tried"]
            unit = any_backend.unit("victim")
            assert SECRET not in (any_backend.unit_dir / unit).read_text()
            systemd_user = request.getfixturevalue("systemd_user")
            shown = systemd_user.systemctl("show", unit).stdout
            assert "HH_OPTIONS_FILE=" in shown and SECRET not in shown  # the show works, without the secret
        else:
            assert Path(seen["creds"]) == config.run_dir / "credentials" / "victim"

        secrets_file = config.root / "secrets" / "victim.json"
        assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(secrets_file.parent.stat().st_mode) == 0o700
        cred = config.run_dir / "credentials" / "victim" / "api_key"
        assert stat.S_IMODE(cred.stat().st_mode) == 0o600
        for where in ("/api/apps/victim/options", "/api/apps/victim", "/api/events", "/api/apps"):
            assert SECRET not in (await client.get(where)).text
        for f in [*config.root.joinpath("logs").rglob("*"), config.root / "options" / "victim.json",
                  *config.run_dir.joinpath("options").rglob("*.json")]:
            if f.is_file():
                assert SECRET not in f.read_text(errors="replace"), f

        # While it runs: a bad value changes nothing; a good one restarts it with the new value.
        r = await client.put("/api/apps/victim/options", json={"interval": 0}, headers=h)
        assert r.status_code == 400 and r.json()["detail"]["errors"] == ["interval: must be from 1 to 3600, got 0"]
        assert (await client.get("/api/apps/victim")).json()["state"] == "running"
        assert _seen(config.data_dir("victim"))["pid"] == seen["pid"]
        r = await client.put("/api/apps/victim/options", json={"interval": 11, "api_key": SECRET + "-2"}, headers=h)
        assert r.status_code == 200 and r.json()["restarted"] is True
        again = await wait_until(lambda: (s := _seen(config.data_dir("victim"))) and s["pid"] != seen["pid"] and s,
                                 timeout=60)
        assert again["options"] == {"interval": 11} and again["secret"] == SECRET + "-2"
        for app in ("victim", "spy", "app-00"):
            await client.post(f"/api/apps/{app}/stop", headers=h)
