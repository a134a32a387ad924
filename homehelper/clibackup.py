"""`homehelper backup` and `homehelper restore`: archives of the state root, and bringing one back.

With a server running on the root, `backup` and `restore --app` ask it (it stops and starts the
apps that need it, and holds the root); without one, they work on the root directly, holding its
lock meanwhile so no server starts halfway. A whole restore needs the server stopped. Exit codes:
0 ok, 1 failed (a refused archive, a failed backup), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import Config
from .errors import Conflict, HomeHelperError

OK, FAILED, USAGE = 0, 1, 2
BACKUP_EXAMPLE = ("homehelper backup                      # into backup.dir (default <root>/backups)\n"
                  "  homehelper backup --to /media/usb/hh.tar.gz --passphrase-file ~/.hh-pass")
RESTORE_EXAMPLE = ("homehelper restore /media/usb/hh.tar.gz --root /var/lib/homehelper   # a fresh Pi\n"
                   "  homehelper restore hh.tar.gz --app notes                 # one app's data")


def add_commands(sub: Any, root: argparse.ArgumentParser) -> None:
    def command(name: str, help_: str, example: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(
            name, parents=[root], help=help_, description=help_,
            epilog=f"example:\n  {example}\n\nexit codes: 0 ok, 1 failed, 2 usage",
            formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--passphrase-file", type=Path, help="seal (backup) or open (restore) the secrets with "
                       "the passphrase in this file; default: the config's backup.passphrase_file")
        p.add_argument("--port", type=int, help="port of the running dashboard (default: the config's)")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    b = command("backup", "write one archive of config, password, registry, apps and their data", BACKUP_EXAMPLE)
    b.add_argument("--to", type=Path, metavar="FILE", help="where to write it (default: a new file in backup.dir)")
    r = command("restore", "restore a state root (or one app's data) from a backup archive", RESTORE_EXAMPLE)
    r.add_argument("archive", type=Path, metavar="FILE")
    r.add_argument("--app", metavar="APP", help="restore only this app's data (stopped meanwhile)")
    r.add_argument("--force", action="store_true", help="restore over a root that is not fresh (what is "
                   "there is moved to <root>/before-restore-<time>/)")
    r.add_argument("--without-secrets", action="store_true", help="restore an archive with sealed secrets "
                   "without them")


def run(config: Config, args: argparse.Namespace) -> int:
    from .clictl import _progress

    try:
        passphrase = _passphrase(config, args.passphrase_file)
        # a spinner with what is being done, in a terminal only: quiet when piped or with --json
        with _progress(enabled=not args.json and sys.stderr.isatty()) as show:
            if args.command == "backup":
                show("backing up")
                result = backup(config, args.to, passphrase, show)
            elif args.app:
                show(f"restoring the data of {args.app}")
                result = restore_app(config, args.archive, args.app)
            else:
                from .backup.restore import restore_root

                show(f"checking and unpacking {args.archive.name}")
                result = restore_root(args.archive.resolve(), config.root, passphrase=passphrase,
                                      without_secrets=args.without_secrets, force=args.force)
    except HomeHelperError as exc:
        print(f"homehelper {args.command}: {exc.message}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        print(f"homehelper {args.command}: interrupted", file=sys.stderr)
        return FAILED
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _say(args, result)
    return OK


def _passphrase(config: Config, path: Path | None) -> str | None:
    from .backup.crypto import read_passphrase

    source = path or (config.backup.passphrase_file or None)
    return read_passphrase(source) if source else None


def _say(args: argparse.Namespace, r: dict[str, Any]) -> None:
    if args.command == "backup":
        print(f"backup written: {r['path']} ({r['size']} bytes, {len(r['apps'])} apps, secrets {r['secrets']})")
        for w in r.get("warnings") or ():
            print(f"  warning: {w}", file=sys.stderr)
    elif args.app:
        print(f"{r['app']}: data restored from {r['archive']} ({r['files']} files)"
              + ("; started again" if r.get("restarted") else ""))
    else:
        print(f"restored {r['root']} from the backup of {r['created']}: apps {', '.join(r['apps']) or 'none'}; "
              f"secrets {r['secrets']}")
        if r["kept_app_folders"]:
            print(f"  kept this machine's own folders of: {', '.join(r['kept_app_folders'])}")
        if r["moved_aside"]:
            print(f"  what was there is in {r['moved_aside']}")
        print("start it with `homehelper serve` (or the service); each app's venv is rebuilt as it starts")


def _lock_or_none(config: Config) -> Any:
    """The root's lock when no server holds it; None when one does (then ask it)."""
    from .stateroot import lock_root

    try:
        return lock_root(config.root)
    except Conflict:
        return None


def backup(config: Config, to: Path | None, passphrase: str | None,
           show: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    lock = _lock_or_none(config)
    if lock is None:
        show("the running server is backing up")
        return _backup_online(config, to, passphrase)
    try:
        from .actors.scanner import scan_folder
        from .backup.archive import backup_folder, remove_leftovers, unique_path, write_archive
        from .backup.schedule import rotate

        folder = backup_folder(config)
        if to is None and not config.backup.dir:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        dest = to.resolve() if to is not None else unique_path(folder, config.node_id)
        if folder.is_dir():
            remove_leftovers(folder)
        found, _ = scan_folder(config.apps_dir)
        result = write_archive(config, dest, {m.id: m for m in found}, passphrase=passphrase,
                               hook=lambda app_id, when: show(f"copying the data of {app_id}"))
        if to is None:
            result["removed"] = [p.name for p in rotate(folder, config.backup.keep, config.node_id)]
        return result
    finally:
        lock.release()


def _server(config: Config) -> Any:
    from .clictl import Server

    return Server(config)


def _post(config: Config, path: str, body: dict[str, Any]) -> dict[str, Any]:
    import httpx

    server = _server(config)
    try:
        r = httpx.post(server.base + path, headers=server.headers, json=body, timeout=3700)
    except httpx.HTTPError:
        raise Conflict(f"state root {config.root} is in use, but no HomeHelper answers on {server.base} "
                       f"(--port?); stop what holds it, or try again") from None
    if r.status_code != 200:
        from .clictl import message

        raise Conflict(message(r) if r.status_code != 401 else str(server.refused()))
    data: dict[str, Any] = r.json()
    return data


def _backup_online(config: Config, to: Path | None, passphrase: str | None) -> dict[str, Any]:
    result: dict[str, Any] = _post(config, "/api/backups", {"passphrase": passphrase} if passphrase else {})[
        "backup"]
    if to is not None:  # the server wrote it into its folder; a copy goes where asked
        import httpx

        server = _server(config)
        target = to.resolve()
        partial = target.with_name(f".{target.name}.partial")
        with httpx.stream("GET", f"{server.base}/api/backups/{result['name']}", headers=server.headers,
                          timeout=600) as r, os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                                                               0o600), "wb") as out:
            if r.status_code != 200:
                raise Conflict(f"the server wrote {result['name']} but did not hand it over (HTTP {r.status_code})")
            for chunk in r.iter_bytes():
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
        result["copied_to"] = str(target)
        result["path"] = str(target)
    return result


def restore_app(config: Config, archive: Path, app_id: str) -> dict[str, Any]:
    archive = archive.resolve()
    lock = _lock_or_none(config)
    if lock is None:
        result: dict[str, Any] = _post(config, f"/api/apps/{app_id}/restore", {"archive": str(archive)})["restored"]
        return result
    try:
        from .backup.restore import restore_app_data

        return restore_app_data(archive, config.root, app_id)
    finally:
        lock.release()
