"""The `homehelper` command: serve, apps, approve, validate, install; control commands in clictl.py."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import sys
from pathlib import Path
from typing import Any

from . import __version__
from .config import Config, load_config, resolve_root
from .errors import ConfigError, HomeHelperError, ManifestError
from .manifest import MANIFEST_NAME, load_manifest


def _parser() -> argparse.ArgumentParser:
    # --root is taken before or after the subcommand: `homehelper --root X serve` = `homehelper serve --root X`.
    root = argparse.ArgumentParser(add_help=False)
    root.add_argument("--root", type=Path, default=argparse.SUPPRESS,
                      help="state root (config, data, logs, registry); env HOMEHELPER_ROOT")
    p = argparse.ArgumentParser(prog="homehelper", description="Supervise a folder of small Python apps.",
                                parents=[root])
    p.add_argument("--version", action="version", version=f"homehelper {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", parents=[root], help="run HomeHelper: actors, apps and the dashboard")
    s.add_argument("--apps-dir", type=Path, help="the folder of apps")
    s.add_argument("--host", help="address the dashboard listens on (0.0.0.0 for the LAN)")
    s.add_argument("--port", type=int, help="dashboard port (default 8000)")
    s.add_argument("--backend", choices=["auto", "systemd", "process"], help="how service apps run")
    s.add_argument("--redis-url", help="redis://host:port/0; none: the in-process bus alone")
    a = sub.add_parser("apps", parents=[root], help="list discovered apps with state and port")
    a.add_argument("--apps-dir", type=Path)
    a.add_argument("--port", type=int, help="port of the running dashboard")
    a.add_argument("--json", action="store_true", help="machine-readable output")
    a.add_argument("--all-nodes", action="store_true", help="every node of the fleet (asks the running server)")
    ap = sub.add_parser("approve", parents=[root],
                        help="approve the permissions and devices an app asks for (asks the running server)",
                        epilog="example:\n  homehelper approve door-sensor --yes\n\n"
                               "exit codes: 0 ok, 1 failed, 2 usage, 3 server not running",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("app", help="the app's id")
    ap.add_argument("--yes", action="store_true", help="approve without asking (scripts)")
    ap.add_argument("--port", type=int, help="port of the running dashboard")
    v = sub.add_parser("validate", parents=[root], help="check an app folder or its homehelper.json")
    v.add_argument("path", type=Path)
    sub.add_parser("password", parents=[root],
                   help="set the dashboard password (HOMEHELPER_PASSWORD or a prompt); logs everyone out")
    b = sub.add_parser("bench", help="run the benchmarks of a source checkout (python -m benchmarks ...)")
    b.add_argument("bench_args", nargs=argparse.REMAINDER, help="e.g. --quick, --profile pi5, load")
    i = sub.add_parser("install", parents=[root],
                       help="install HomeHelper itself as a systemd service (starts at boot)")
    i.add_argument("--scope", choices=["user", "system"], help="systemd scope (default from config)")
    i.add_argument("--dry-run", action="store_true", help="print the unit, change nothing")
    i.add_argument("--no-start", action="store_true", help="enable the unit for the next boot, do not start it now")
    from .clictl import add_commands
    from .clioptions import add_commands as add_options_commands

    add_commands(sub, root)
    from .clibackup import add_commands as add_backup_commands

    add_backup_commands(sub, root)
    add_options_commands(sub, root)
    from .clisource import add_commands as add_source_commands

    add_source_commands(sub, root)
    from .scaffold import add_commands as add_scaffold_commands

    add_scaffold_commands(sub, root)
    from .clifleet import add_commands as add_fleet_commands

    add_fleet_commands(sub, root)
    return p


def main(argv: list[str] | None = None) -> int:
    """Exit 0 on success; 1 with one line on stderr when something stops it (a busy port, a state
    root in use or not writable...); 2 for a bad configuration or bad arguments."""
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    except BaseException as exc:  # sorted below: the failures a user can fix are one line, bugs a traceback
        failure = start_failure(exc)
        if failure is None:
            raise
        logging.getLogger("homehelper").debug("stopped by", exc_info=exc)  # the whole story, at log_level DEBUG
        print(f"homehelper: {failure}", file=sys.stderr)
        return 2 if isinstance(failure, ConfigError) else 1


def _main(argv: list[str]) -> int:
    if argv[:1] == ["bench"]:  # everything after it is the benchmark runner's
        return bench(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "validate":
        return validate(args.path)
    if args.command == "new":
        from . import scaffold

        return scaffold.run(args)
    overrides: dict[str, Any] = {}
    for key in ("apps_dir", "host", "port", "backend", "redis_url"):
        value = getattr(args, key, None)
        if value is not None:
            overrides[key] = str(value) if isinstance(value, Path) else value
    root_arg = getattr(args, "root", None)
    if args.command == "serve":
        return serve(root_arg, overrides)
    try:
        config = load_config(root_arg, overrides)
    except ConfigError as exc:
        print(f"homehelper: bad configuration: {exc.message}", file=sys.stderr)
        return 2
    _logging(config)
    if args.command == "apps":
        if args.all_nodes:
            from . import clifleet

            return clifleet.all_apps(config, args.json)
        return list_apps(config, as_json=args.json)
    if args.command == "approve":
        return approve(config, args.app, assume_yes=args.yes)
    if args.command == "password":
        return set_password(config)
    if args.command == "fleet" or getattr(args, "node", None):  # status/start/stop/restart --node N
        from . import clifleet

        return clifleet.run(config, args)
    if args.command in ("start", "stop", "restart", "status", "logs", "install-app", "enable", "disable"):
        from . import clictl

        return clictl.run(config, args)
    if args.command in ("backup", "restore"):
        from . import clibackup

        return clibackup.run(config, args)
    if args.command in ("add", "update"):
        from . import clisource

        return clisource.run(config, args)
    if args.command == "config":
        from . import clioptions

        return clioptions.run(config, args)
    if args.command == "install":
        from . import selfinstall

        return selfinstall.install_command(config, args)
    return 2


def _logging(config: Config) -> None:
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise


def serve(root_arg: Path | None, overrides: dict[str, Any]) -> int:
    """Lock the state root before anything else, then load (or repair) the config and run."""
    from .serve import run_forever
    from .stateroot import load_or_repair, lock_root

    root, why = resolve_root(root_arg)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    lock = lock_root(root)
    try:
        logging.getLogger("homehelper").info("state root %s (%s)", root, why)
        try:
            config, notices = load_or_repair(root, overrides)
        except ConfigError as exc:
            print(f"homehelper: bad configuration: {exc.message}", file=sys.stderr)
            return 2
        logging.getLogger().setLevel(config.log_level)
        logging.getLogger("httpx").setLevel(logging.WARNING)
        try:
            return run_forever(config, lock=lock, notices=notices)
        except BaseException as exc:
            failure = start_failure(exc, listen=f"{config.host}:{config.port}")
            if failure is None:
                raise
            logging.getLogger("homehelper").debug("stopped by", exc_info=exc)
            print(f"homehelper: {failure}", file=sys.stderr)
            return 1
    finally:
        lock.release()


def start_failure(exc: BaseException, listen: str = "") -> HomeHelperError | str | None:
    """What to say for a failure a user can fix (found inside trio's exception groups), or None for a bug."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = start_failure(inner, listen)
            if found is not None:
                return found
        return None
    if isinstance(exc, HomeHelperError):
        return exc
    if isinstance(exc, OSError):
        return describe_os_error(exc, listen)
    return None


def describe_os_error(exc: OSError, listen: str = "") -> str:
    on = f" on {listen}" if listen else ""
    if exc.errno == errno.EADDRINUSE:
        return (f"cannot listen{on}: the address is in use; another program, or another HomeHelper, "
                f"has the port: choose one with --port")
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen{on}: {exc.strerror} (is --host an address of this machine?)"
    if isinstance(exc, PermissionError) and exc.filename:
        return (f"permission denied on {exc.filename}: choose a state root you can write with --root "
                f"or HOMEHELPER_ROOT")
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def bench(bench_args: list[str]) -> int:
    import subprocess

    from .config import CHECKOUT

    if CHECKOUT is None or not (CHECKOUT / "benchmarks").is_dir():
        print("homehelper bench: the benchmarks ship with the source checkout only", file=sys.stderr)
        return 2
    return subprocess.call([sys.executable, "-m", "benchmarks", *bench_args], cwd=CHECKOUT)


def set_password(config: Config) -> int:
    import getpass
    import os

    from .errors import ValidationError
    from .web.auth import Auth, auth_file

    password = os.environ.get("HOMEHELPER_PASSWORD") or getpass.getpass("New dashboard password: ")
    try:
        Auth(auth_file(config.root), config.auth.session_hours).set_password(password)
    except ValidationError as exc:
        print(f"homehelper: {exc.message}", file=sys.stderr)
        return 1
    print(f"password saved in {auth_file(config.root)}; a running server logs its sessions out")
    return 0


def validate(path: Path) -> int:
    folder = path.parent if path.name == MANIFEST_NAME else path
    try:
        m = load_manifest(folder)
    except ManifestError as exc:
        print(f"{folder}: invalid", file=sys.stderr)
        for err in exc.errors:
            print(f"  - {err}", file=sys.stderr)
        return 1
    print(f"{folder}: valid {m.type} app {m.id!r} ({m.name} {m.version})")
    return 0


def _server(config: Config) -> tuple[str, dict[str, str]]:
    """The running server's base URL on this machine, and the CLI token's header."""
    token_file = config.run_dir / "cli-token"
    headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"} if token_file.exists() else {}
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::") else config.host
    return f"http://{host}:{config.port}", headers


def _live_apps(config: Config) -> list[dict[str, Any]] | None:
    """The running server's view, if one answers on this machine."""
    import httpx

    base, headers = _server(config)
    try:
        r = httpx.get(f"{base}/api/apps", headers=headers, timeout=2)
        if r.status_code == 200:
            data = r.json()
            return data["apps"] if isinstance(data, dict) else data
    except (httpx.HTTPError, ValueError, KeyError):
        pass
    return None


def list_apps(config: Config, as_json: bool = False) -> int:
    from . import approvals
    from .actors.scanner import scan_folder
    from .storage import read_json

    apps = _live_apps(config)
    source = "live"
    if apps is None:
        source = "offline (HomeHelper is not running)"
        manifests, invalid = scan_folder(config.apps_dir)
        try:
            ports = read_json(config.registry_dir / "ports.json", {})
        except (OSError, ValueError, RecursionError):  # damaged: the server sets it aside and rebuilds it
            ports = {}
        ports = ports if isinstance(ports, dict) else {}
        approved = approvals.load(config.registry_dir / approvals.FILE_NAME)
        apps = [{"id": m.id, "type": m.type, "state": "-", "port": ports.get(m.id), "name": m.name,
                 "permissions": list(m.permissions), "devices": list(m.devices),
                 "approved": not m.grants or approved.get(m.id) == approvals.normalize(m.grants)}
                for m in manifests]
        apps += [{"id": f, "type": None, "state": "invalid", "port": None, "errors": list(e)}
                 for f, e in invalid.items()]
    if as_json:
        print(json.dumps({"source": source, "apps": apps}, indent=2))
        return 0
    print(f"apps in {config.apps_dir} [{source}]")
    print(f"{'ID':<24} {'TYPE':<10} {'STATE':<18} {'PORT':<6} {'SANDBOX':<12} {'EXPOSURE':<13} PERMISSIONS")
    for a in apps:
        print(f"{a['id']:<24} {a.get('type') or '-':<10} {a.get('state') or '-':<18} {a.get('port') or '-':<6} "
              f"{a.get('sandbox') or '-':<12} {_exposure(a):<13} {_grants(a)}")
        for err in a.get("errors") or ():
            print(f"    ! {err}")
    return 0


def _exposure(app: dict[str, Any]) -> str:
    score, level = app.get("exposure"), app.get("exposure_level")
    return f"{score} {level}" if isinstance(score, (int, float)) and isinstance(level, str) else "-"


def _grants(app: dict[str, Any]) -> str:
    grants = [str(g) for g in (*(app.get("permissions") or ()), *(app.get("devices") or ()))]
    if not grants:
        return "-"
    return " ".join(grants) + ("" if app.get("approved") else "  (not approved)")


def approve(config: Config, app_id: str, assume_yes: bool = False) -> int:
    """Show what the app asks for, ask, and approve that exact list on the running server.

    Only the server writes approvals (it is the store's one writer and starts a waiting app);
    when it is not running there is nothing to start, and the dashboard or this command
    approves once it runs.
    """
    from urllib.parse import quote

    import httpx

    from .clictl import NOT_RUNNING, Server

    base, headers = _server(config)
    app_id = quote(app_id, safe="")
    try:
        r = httpx.get(f"{base}/api/apps/{app_id}", headers=headers, timeout=5)
    except (httpx.ConnectError, httpx.ConnectTimeout):
        print(f"homehelper: {Server(config).not_running()}", file=sys.stderr)
        return NOT_RUNNING
    except httpx.HTTPError as exc:
        print(f"homehelper: {base}: {exc}", file=sys.stderr)
        return 1
    if r.status_code != 200:
        print(f"homehelper: {_message(r)}", file=sys.stderr)
        return 1
    app = r.json()
    grants = [*app.get("permissions", ()), *app.get("devices", ())]
    if not grants:
        print(f"{app_id} asks for no permissions or devices: nothing to approve")
        return 0
    print(f"{app_id} asks for: {', '.join(grants)}")
    if app.get("approved"):
        print("already approved")
        return 0
    if not assume_yes:
        if not sys.stdin.isatty():
            print("homehelper: not approved: pass --yes to approve without a prompt", file=sys.stderr)
            return 1
        if input("approve? [y/N] ").strip().lower() not in ("y", "yes"):
            print("not approved")
            return 1
    try:
        r = httpx.post(f"{base}/api/apps/{app_id}/approve", headers=headers, json={"grants": grants}, timeout=310)
    except httpx.HTTPError as exc:
        print(f"homehelper: {exc}", file=sys.stderr)
        return 1
    if r.status_code != 200:
        print(f"homehelper: not approved: {_message(r)}", file=sys.stderr)
        return 1
    state = (r.json().get("app") or {}).get("state", "?")
    print(f"approved; {app_id} is {state}")
    return 0


def _message(r: Any) -> str:
    try:
        return str(r.json()["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {r.status_code}"


if __name__ == "__main__":
    sys.exit(main())
