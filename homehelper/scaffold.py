"""`homehelper new APP --type service|streamlit|job`: a working app to start from.

Writes `<dir>/<APP>/` with a manifest (checked by the same validator as `homehelper validate`
before the command says it is done), a main file using `homehelper.sdk` (an option, a secret,
the data folder, a bus message, a page) and an empty requirements.txt. It never overwrites: an
existing folder is refused. Without `--dir` the app goes into HomeHelper's apps folder, where
the running server finds it by itself.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from .errors import ConfigError, ManifestError
from .manifest import ID_RE, load_manifest

TYPES = ("service", "streamlit", "job")

_OPTIONS: dict[str, Any] = {
    "greeting": {"type": "string", "default": "Hello", "description": "What the app says"},
    "api_key": {"type": "password", "description": "A secret: write-only, only this app reads it"},
}

SERVICE = '''"""{name}: a HomeHelper service app (docs/first-app.md).

Every `interval` seconds it says its greeting: into its data folder and on the bus (topic
`greetings`). It answers HomeHelper's /health and shows a page at /ui (the dashboard links it).
"""

import html
import time

from homehelper import sdk

opts = sdk.options()  # the user's settings (dashboard, `homehelper config {id}`), else the defaults
said = {{"count": 0, "last": ""}}
app = sdk.AppServer(health=lambda: {{"said": said["count"]}})


@app.every(opts.get("interval", 10))
def greet() -> None:
    said["count"] += 1
    said["last"] = f"{{opts.get('greeting', 'Hello')}} #{{said['count']}} at {{time.strftime('%H:%M:%S')}}"
    (sdk.data_dir() / "last.txt").write_text(said["last"] + "\\n")
    sdk.publish("greetings", {{"text": said["last"]}})  # nothing happens without Redis


@app.route("/ui")
def page(request: sdk.Request) -> str:
    key = "set" if sdk.secret("api_key") else "not set (Settings on its card)"
    return (f"<!doctype html><title>{name}</title><h1>{name}</h1>"
            f"<p>{{html.escape(said['last'])}}</p><p>API key: {{key}}</p>")


if __name__ == "__main__":
    app.run()  # serves on $HH_PORT until HomeHelper stops it
'''

STREAMLIT = '''"""{name}: a HomeHelper Streamlit app (docs/first-app.md), started when someone opens it."""

import streamlit as st

from homehelper import sdk

opts = sdk.options()  # the user's settings (dashboard, `homehelper config {id}`), else the defaults
st.title("{name}")
st.write(f"{{opts.get('greeting', 'Hello')}}!")
st.caption("API key: " + ("set" if sdk.secret("api_key") else "not set (Settings on its card)"))
notes = sdk.data_dir() / "notes.txt"
text = st.text_area("Notes (kept in the app's data folder)", notes.read_text() if notes.exists() else "")
if st.button("Save"):
    notes.write_text(text)
    sdk.publish("notes", {{"chars": len(text)}})  # nothing happens without Redis
    st.success("Saved")
'''

JOB = '''"""{name}: a HomeHelper job (docs/jobs.md), run on its schedule; exit 0 is a success, anything
else a failed run, shown on its card (and notified, when notifications are set up)."""

import time

from homehelper import sdk

opts = sdk.options()  # the user's settings (dashboard, `homehelper config {id}`), else the defaults
line = f"{{time.strftime('%Y-%m-%dT%H:%M:%S')}} {{opts.get('greeting', 'Hello')}}"
with open(sdk.data_dir() / "runs.log", "a") as f:
    f.write(line + "\\n")
sdk.publish("runs", {{"line": line}})  # nothing happens without Redis
print(line, "(API key", "set)" if sdk.secret("api_key") else "not set)", flush=True)
'''


def manifest_for(app_id: str, kind: str) -> dict[str, Any]:
    name = app_id.replace("-", " ").capitalize()
    m: dict[str, Any] = {"id": app_id, "name": name, "version": "0.1.0", "description": f"{name}: a new {kind} app",
                         "type": kind, "requirements": "requirements.txt"}
    options = dict(_OPTIONS)
    if kind == "service":
        m |= {"entry": "main.py", "ui": "/ui",
              "health": {"path": "/health", "interval": 30, "timeout": 5, "failures": 3, "grace": 30},
              "resources": {"memory_mb": 128, "cpu_percent": 25}, "restart": {"policy": "on-failure"}}
        options = {"interval": {"type": "int", "default": 10, "min": 1, "max": 3600,
                                "description": "Seconds between two greetings"}, **options}
    elif kind == "streamlit":
        m |= {"entry": "app.py", "ttl": 300}
    else:
        m |= {"entry": "main.py", "schedule": "*:0/15", "timeout": 60, "resources": {"memory_mb": 64}}
    return m | {"options": options}


def create(app_id: str, kind: str, apps_dir: Path) -> Path:
    """Write the app's folder; returns it. ConfigError for a bad id or type, an existing folder,
    or a manifest the validator refuses (then nothing is left behind)."""
    if not isinstance(app_id, str) or not ID_RE.fullmatch(app_id):
        raise ConfigError(f"{app_id!r} is not an app id: 1-40 lowercase letters, digits or '-', "
                          "starting with a letter or digit")
    if kind not in TYPES:
        raise ConfigError(f"--type must be one of {', '.join(TYPES)}, got {kind!r}")
    folder = apps_dir / app_id
    apps_dir.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir()
    except FileExistsError:
        raise ConfigError(f"{folder} already exists: choose another id, or remove it first") from None
    try:
        source = {"service": SERVICE, "streamlit": STREAMLIT, "job": JOB}[kind]
        entry = "app.py" if kind == "streamlit" else "main.py"
        (folder / entry).write_text(source.format(name=manifest_for(app_id, kind)["name"], id=app_id))
        (folder / "requirements.txt").write_text("# one package a line, installed into this app's own venv\n")
        (folder / "homehelper.json").write_text(json.dumps(manifest_for(app_id, kind), indent=2) + "\n")
        load_manifest(folder)  # the validator of `homehelper validate` and of the scanner
    except (OSError, ManifestError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        detail = "; ".join(exc.errors) if isinstance(exc, ManifestError) else str(exc)
        raise ConfigError(f"could not create {folder}: {detail}") from exc
    return folder


def add_commands(sub: Any, root: argparse.ArgumentParser) -> None:
    p = sub.add_parser("new", parents=[root], help="create a working app to start from (service, streamlit or job)",
                       description="create a working app: manifest, a main file using homehelper.sdk, "
                                   "requirements.txt; the folder must not exist",
                       epilog="example:\n  homehelper new door-sensor --type service\n"
                              "  homehelper new plant-chart --type streamlit --dir ~/apps\n\n"
                              "exit codes: 0 created, 2 refused (bad id or type, folder exists)",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("app", metavar="APP", help="the app's id: lowercase letters, digits, '-'")
    p.add_argument("--type", dest="app_type", choices=TYPES, default="service", help="default: service")
    p.add_argument("--dir", dest="apps_dir", type=Path, help="the folder of apps (default: HomeHelper's apps folder)")


def run(args: argparse.Namespace) -> int:
    apps_dir = args.apps_dir
    try:
        if apps_dir is None:
            from .config import load_config

            apps_dir = load_config(getattr(args, "root", None)).apps_dir
        folder = create(args.app, args.app_type, apps_dir)
    except ConfigError as exc:
        print(f"homehelper: {exc.message}", file=sys.stderr)
        return 2
    files = ", ".join(sorted(p.name for p in folder.iterdir()))
    print(f"created {folder} ({args.app_type} app {args.app!r}: {files}); it is valid.\n"
          f"HomeHelper finds it in its apps folder by itself (or press Rescan); start it on its card "
          f"or with `homehelper start {args.app}`. docs/first-app.md goes on from here.")
    return 0
