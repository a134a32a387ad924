"""`homehelper add` and `homehelper update`: apps from a source, through the running server.

`add` shows what the source holds (id, type, permissions, the commit) before anything is installed,
and installs it once confirmed (a prompt, or --yes). `update APP` installs the newest commit of the
tracked ref and rolls back when it fails its health check; `--check` only asks, `--to VERSION`
switches to an installed version (or fetches that commit), `--list` shows the versions, `--auto on|off`
the daily check. Exit codes: 0 ok, 1 failed (refused, rolled back), 2 usage, 3 server not running.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any
from urllib.parse import quote

from .clictl import FAILED, NOT_RUNNING, OK, USAGE, Failed, NotRunning, Server, safe
from .config import Config

TIMEOUT = 3 * 3600.0  # a clone, a venv rebuilt on a Pi, a health check, perhaps a rollback
ADD_EXAMPLE = ("homehelper add https://github.com/me/hh-apps.git --subdir weather --ref main\n"
               "  homehelper add ~/src/my-app            # a folder (or a .tar.gz / .zip archive)")
UPDATE_EXAMPLE = ("homehelper update weather --check      # is there a new commit?\n"
                  "  homehelper update weather              # update; rolled back if it fails its health check\n"
                  "  homehelper update weather --to 3f2a9c1e...   # back to an earlier version")


def add_commands(sub: Any, root: argparse.ArgumentParser) -> None:
    def command(name: str, help_: str, example: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(
            name, parents=[root], help=help_, description=help_,
            epilog=f"example:\n  {example}\n\nexit codes: 0 ok, 1 failed, 2 usage, 3 server not running",
            formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.add_argument("--port", type=int, help="port of the running dashboard (default: the config's)")
        return p

    a = command("add", "add an app from a git repository (URL or path), a folder or a .tar.gz/.zip archive",
                ADD_EXAMPLE)
    a.add_argument("source", metavar="URL|PATH")
    a.add_argument("--subdir", default="", metavar="D", help="the app's folder inside the source")
    a.add_argument("--ref", metavar="R", help="git branch, tag or commit (default: the remote's HEAD)")
    a.add_argument("--yes", action="store_true", help="install without asking (after showing the preview)")
    u = command("update", "update an app added with `homehelper add`, rolling back on a failed health check",
                UPDATE_EXAMPLE)
    u.add_argument("app", metavar="APP")
    u.add_argument("--check", action="store_true", help="only check for a new commit")
    u.add_argument("--to", metavar="VERSION", help="switch to this version (installed, or a commit to fetch)")
    u.add_argument("--list", action="store_true", help="the source and the installed versions")
    u.add_argument("--auto", choices=["on", "off"], help="check daily and update (default off)")


def run(config: Config, args: argparse.Namespace) -> int:
    server = Server(config)
    try:
        if args.command == "add":
            return add(server, args)
        return update(server, args)
    except NotRunning as exc:
        print(f"homehelper: {exc}", file=sys.stderr)
        return NOT_RUNNING
    except Failed as exc:
        print(f"homehelper {args.command}: {exc}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        print(f"homehelper {args.command}: interrupted; the server finishes what it was asked", file=sys.stderr)
        return FAILED


def _post(server: Server, path: str, body: dict[str, Any] | None = None) -> Any:
    return server.request("POST", path, json=body, timeout=TIMEOUT)


def add(server: Server, args: argparse.Namespace) -> int:
    body = {"source": args.source, "subdir": args.subdir, "ref": args.ref}
    preview = _post(server, "/api/apps/add", body)["preview"]
    if not args.json:
        print(describe(preview))
    if not args.yes:
        if not sys.stdin.isatty():
            print("homehelper add: nothing installed: pass --yes to install without a prompt", file=sys.stderr)
            return USAGE
        if input("install? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing installed")
            return FAILED
    added = _post(server, "/api/apps/add", {"token": preview["token"]})["added"]
    if args.json:
        print(json.dumps({"preview": preview, "added": added}, indent=2))
    else:
        print(f"added {safe(added['app_id'])} at {safe(added['version'])[:12]}: start it with "
              f"`homehelper start {safe(added['app_id'])}`" + (" (after `homehelper approve`)"
                                                              if preview["permissions"] or preview["devices"] else ""))
    return OK


def describe(p: dict[str, Any]) -> str:
    grants = [*p.get("permissions", ()), *p.get("devices", ())]
    lines = [f"{safe(p['app_id'])}: {safe(p['name'])} {safe(p.get('version') or '')} ({safe(p['type'])} app)",
             f"  from {safe(p['source'])}{'/' + safe(p['subdir']) if p.get('subdir') else ''}"
             f" ({safe(p['kind'])}{', ' + safe(p['commit'])[:12] if p.get('commit') else ''})"]
    if p.get("description"):
        lines.append(f"  {safe(p['description'])}")
    lines.append("  asks for: " + (", ".join(safe(g) for g in grants) if grants else
                                   "nothing beyond its sandbox"))
    return "\n".join(lines)


def update(server: Server, args: argparse.Namespace) -> int:
    app = quote(args.app, safe="")
    if args.auto is not None:
        result = _post(server, f"/api/apps/{app}/auto-update", {"enabled": args.auto == "on"})
    elif args.list:
        result = server.get(f"/api/apps/{app}/source")
    elif args.check:
        result = _post(server, f"/api/apps/{app}/check-update")
    else:
        result = _post(server, f"/api/apps/{app}/update", {"to": args.to} if args.to else {})
    if args.json:
        print(json.dumps(result, indent=2))
        return OK
    if "update_available" in result:
        print(f"{safe(args.app)}: " + (f"{safe(result['latest'])[:12]} is available (now at "
                                       f"{safe(result['current'])[:12]}): `homehelper update {safe(args.app)}`"
                                       if result["update_available"] else "up to date"))
    elif "updated" in result:
        print(f"{safe(args.app)}: " + (f"updated to {safe(result['version'])[:12]}" if result["updated"]
                                       else safe(result.get("message", "unchanged"))))
    else:
        src = result.get("source") or {}
        print(f"{safe(args.app)}: from {safe(src.get('url', '?'))} ({safe(src.get('kind', '?'))}"
              f"{', ref ' + safe(src['ref']) if src.get('ref') else ''}); auto-update "
              f"{'on' if src.get('auto_update') else 'off'}")
        for v in result.get("versions", ()):
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(v["installed_at"]))
            print(f"  {'*' if v['current'] else ' '} {safe(v['version'])}  installed {when}")
    return OK
