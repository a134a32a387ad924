"""The fleet in the CLI: `homehelper fleet`, `homehelper fleet credentials NODE`, `homehelper apps
--all-nodes`, `homehelper status --node N`. Each asks the server on this machine (GET /api/fleet), except
`credentials`, which talks to Redis as its admin to give a new Pi its own user (docs/fleet.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any
from urllib.parse import quote

from .clictl import FAILED, OK, USAGE, Failed, NotRunning, Server, safe, said
from .config import Config

EXAMPLES = ("homehelper fleet                    # every node: online, offline since, unknown\n"
            "  homehelper fleet credentials garage --admin-url redis://default:PW@hub.local:6379/0")


def add_commands(sub: Any, root: argparse.ArgumentParser) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "fleet", parents=[root], help="the HomeHelpers over this Redis (asks the running server)",
        epilog=f"examples:\n  {EXAMPLES}\n\nexit codes: 0 ok, 1 failed, 2 usage, 3 server not running",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, help="port of the running dashboard (default: the config's)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("what", nargs="?", choices=["nodes", "credentials"], default="nodes")
    p.add_argument("node", nargs="?", metavar="NODE", help="credentials: the new node's id")
    p.add_argument("--admin-url", help="credentials: a Redis URL allowed to manage users (ACL SETUSER)")


def run(config: Config, args: argparse.Namespace) -> int:
    if args.command == "status":
        return all_apps(config, args.json, args.node)
    try:
        if args.command in ("start", "stop", "restart"):
            return act(Server(config), args.node, args.command, args.apps, args.json)
        if args.what == "credentials":
            return credentials(args.node, args.admin_url)
        return nodes(Server(config), args.json)
    except (NotRunning, Failed) as exc:
        return said(exc)


def _fleet(server: Server) -> dict[str, Any]:
    data = server.get("/api/fleet")
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        raise Failed(f"{server.base} answered, but not with a fleet: is --port right?")
    if not data.get("enabled"):
        raise Failed("no Redis configured: this HomeHelper is not in a fleet (set redis_url)")
    return data


def _when(t: Any) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") if isinstance(t, (int, float)) else "?"


def _status(n: dict[str, Any]) -> str:
    if n.get("status") == "online":
        return "online"
    if n.get("status") == "offline":
        return f"offline since {_when(n.get('since'))}"
    return f"unknown (last seen {_when(n.get('seen'))})"


def _warn_unknown(data: dict[str, Any]) -> None:
    if data.get("redis") == "unknown":
        print(f"homehelper: Redis is away ({safe(data.get('error'))}): the fleet below is what was last known",
              file=sys.stderr)


def nodes(server: Server, as_json: bool) -> int:
    data = _fleet(server)
    if as_json:
        print(json.dumps(data, indent=2))
        return OK
    _warn_unknown(data)
    print(f"{'NODE':<20} {'STATUS':<36} {'VERSION':<9} {'CPU':<5} {'MEM':<5} APPS")
    for n in data["nodes"]:
        s: dict[str, Any] = n["summary"] if isinstance(n.get("summary"), dict) else {}
        m: dict[str, Any] = s["machine"] if isinstance(s.get("machine"), dict) else {}
        counts: dict[str, Any] = s["counts"] if isinstance(s.get("counts"), dict) else {}
        print(f"{safe(n.get('node')):<20} {_status(n):<36} {safe(s.get('version') or '-'):<9} "
              f"{_pct(m.get('cpu')):<5} {_pct(m.get('memory')):<5} "
              f"{', '.join(f'{v} {safe(k)}' for k, v in counts.items()) or '-'}")
    return OK


def _pct(x: Any) -> str:
    return f"{x:.0f}%" if isinstance(x, (int, float)) else "-"


def all_apps(config: Config, as_json: bool, only: str | None = None) -> int:
    """`homehelper apps --all-nodes` (every node) and `homehelper status --node N` (one)."""
    server = Server(config)
    try:
        data = _fleet(server)
    except (NotRunning, Failed) as exc:
        return said(exc)
    found = [n for n in data["nodes"] if only is None or n.get("node") == only]
    if only is not None and not found:
        print(f"homehelper: no node {safe(only)!r} in the fleet (see `homehelper fleet`)", file=sys.stderr)
        return USAGE
    if as_json:
        print(json.dumps({"redis": data.get("redis"), "nodes": found}, indent=2))
        return OK
    _warn_unknown(data)
    print(f"{'NODE':<16} {'ID':<24} {'TYPE':<10} {'STATE':<18} {'HEALTH':<10} LAST ERROR")
    for n in found:
        s = n["summary"] if isinstance(n.get("summary"), dict) else {}
        apps: list[Any] = s["apps"] if isinstance(s.get("apps"), list) else []
        where = f"{safe(n.get('node'))}" + ("" if n.get("status") == "online" else "*")
        for a in (x for x in apps if isinstance(x, dict)):
            healthy = a.get("healthy")
            health = "healthy" if healthy is True else "unhealthy" if healthy is False else "-"
            print(f"{where:<16} {safe(a.get('id')):<24} {safe(a.get('type') or '-'):<10} "
                  f"{safe(a.get('state') or '-'):<18} {health:<10} {safe(a.get('last_error') or '')[:60]}")
        if not apps:
            print(f"{where:<16} (no apps)")
    if any(n.get("status") != "online" for n in found):
        print("* not online: its last known apps (`homehelper fleet` says since when)")
    return OK


def act(server: Server, node: str, action: str, app_ids: list[str], as_json: bool) -> int:
    """`homehelper stop lamp --node garage`: through this node's server and the fleet, each app in turn."""
    import httpx

    results = []
    for app_id in app_ids:
        path = f"/api/fleet/{quote(node, safe='')}/apps/{quote(app_id, safe='')}/{action}"
        try:
            r = httpx.post(server.base + path, headers=server.headers, timeout=600)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise server.not_running() from None
        except httpx.HTTPError as exc:
            raise Failed(f"{server.base}: {exc}") from None
        if r.status_code == 401:
            raise server.refused()
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        ok = r.status_code == 200 and body.get("ok") is True
        app: dict[str, Any] = body["app"] if isinstance(body.get("app"), dict) else {}
        result = {"node": node, "app": app_id, "ok": ok, "state": app.get("state"),
                  "message": "" if ok else safe(body.get("error") or body.get("message") or f"HTTP {r.status_code}")}
        results.append(result)
        if not as_json:
            if ok:
                print(f"{safe(node)}/{safe(app_id)}: {safe(result['state'])}")
            else:
                print(f"{safe(node)}/{safe(app_id)}: failed: {result['message']}", file=sys.stderr)
    if as_json:
        print(json.dumps({"action": action, "node": node, "results": results}, indent=2))
    return OK if all(r["ok"] for r in results) else FAILED


def credentials(node: str | None, admin_url: str | None) -> int:
    """Make the node's Redis user (its own, not the default) and print the redis_url it connects with."""
    import redis

    from .bus.acl import redact
    from .bus.channels import check_name
    from .bus.nodeacl import node_user, setup

    if not node or not admin_url:
        print("homehelper fleet credentials: give the node id and --admin-url", file=sys.stderr)
        return USAGE
    try:
        check_name("node id", node)
    except ValueError as exc:
        print(f"homehelper: {exc}", file=sys.stderr)
        return USAGE
    try:
        client = redis.Redis.from_url(admin_url, decode_responses=True, socket_connect_timeout=5, socket_timeout=10)
        try:
            url = setup(client, admin_url, node)
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        print(f"homehelper: Redis at {redact(admin_url)} refused: {safe(exc)}", file=sys.stderr)
        return FAILED
    print(f"made Redis user {node_user(node)}; on the new Pi, put in its config.json:", file=sys.stderr)
    print(json.dumps({"node_id": node, "redis_url": url}, indent=2))
    return OK
