"""`homehelper config APP [key=value ...]`: show an app's options, or change them on the running server.

Without pairs it prints each option (type, value, description; a password only "set" or "not
set"). With pairs it sends them together: the server checks them all, refuses the lot naming each
bad option (exit 1, nothing changed), or saves them and restarts the app if it runs. A password
given as `key=-` is read from stdin (a prompt in a terminal), so it stays out of the shell history.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any
from urllib.parse import quote

import attrs

from .clictl import OK, USAGE, Failed, NotRunning, Server, safe, said
from .config import Config
from .errors import ValidationError
from .options import Option, parse_cli

EXAMPLE = ("homehelper config weather                      # show its options\n"
           "  homehelper config weather interval=10 rooms=kitchen,hall\n"
           "  homehelper config weather api_key=-            # a password, read from stdin")


def add_commands(sub: Any, root: argparse.ArgumentParser) -> None:
    p = sub.add_parser("config", parents=[root], help="show or change an app's options (asks the running server)",
                       description="show or change an app's options; a change restarts the app if it runs",
                       epilog=f"example:\n  {EXAMPLE}\n\nexit codes: 0 ok, 1 refused or failed, 2 usage, "
                              "3 server not running", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("app", metavar="APP")
    p.add_argument("pairs", nargs="*", metavar="key=value", help="options to set (key= resets a non-text option)")
    p.add_argument("--port", type=int, help="port of the running dashboard (default: the config's)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(config: Config, args: argparse.Namespace) -> int:
    server = Server(config)
    path = f"/api/apps/{quote(args.app, safe='')}/options"
    try:
        current = server.get(path)
        if not args.pairs:
            _show(current, args.json)
            return OK
        known = attrs.fields_dict(Option)
        schema = tuple(Option(**{k: v for k, v in o.items() if k in known} | {"choices": tuple(o.get("choices") or ())})
                       for o in current["options"])
        try:
            changes = parse_cli(schema, args.pairs)
        except ValidationError as exc:
            print(f"homehelper config: {safe(exc.message)}", file=sys.stderr)
            return USAGE
        for opt in schema:
            if opt.secret and changes.get(opt.name) == "-":
                changes[opt.name] = _read_secret(opt.name)
        result = _put(server, path, changes)
    except (NotRunning, Failed) as exc:
        return said(exc, "homehelper config")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        restarted = " (restarted)" if result.get("restarted") else ""
        print(f"{safe(args.app)}: set {', '.join(sorted(changes))}{restarted}")
    return OK


def _read_secret(name: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(f"{name}: ")
    return sys.stdin.readline().rstrip("\n")


def _put(server: Server, path: str, changes: dict[str, Any]) -> dict[str, Any]:
    data = server.request("PUT", path, json=changes, timeout=90)
    if not isinstance(data, dict):
        raise Failed(f"{server.base} answered, but not as HomeHelper does: is --port right?")
    return data


def _show(current: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(current, indent=2))
        return
    options = current.get("options") or []
    if not options:
        print(f"{safe(current.get('app'))} has no options")
        return
    values, secrets = current.get("values") or {}, current.get("secrets") or {}
    for o in options:
        name = o.get("name")
        shown = secrets.get(name, "not set") if o.get("type") == "password" else json.dumps(values.get(name))
        about = f"  {o['description']}" if o.get("description") else ""
        print(safe(f"{name} ({o.get('type')}) = {shown}{about}"))
