"""Small service apps written into a test's state root, and what the tests share."""

from __future__ import annotations

import json
import random
import textwrap
from pathlib import Path
from typing import Any

import attrs

from homehelper.actors.ports import port_is_free
from homehelper.config import Config, load_config
from homehelper.manifest import Manifest, load_manifest
from tests.fixtures.tree import wait_until as wait_until  # the one poller, re-exported

REPO = Path(__file__).resolve().parents[2]

# A real /health server in a few lines; FAIL_HEALTH=1 makes /health answer 503.
HEALTHY_APP = """
import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        bad = self.path == "/health" and os.environ.get("FAIL_HEALTH") == "1"
        self.send_response(503 if bad else 200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
print("up on", os.environ["HH_PORT"], "data", os.environ["HH_DATA_DIR"], flush=True)
open(os.path.join(os.environ["HH_DATA_DIR"], "alive"), "w").write(str(os.getpid()))
http.server.HTTPServer((os.environ["HH_HOST"], int(os.environ["HH_PORT"])), H).serve_forever()
"""

CRASHING_APP = """
import sys, time
print("working...", flush=True)
time.sleep(0.3)
print("RuntimeError: sensor bus lost", file=sys.stderr, flush=True)
sys.exit(3)
"""

IMPORT_ERROR_APP = """
import definitely_not_a_module_hh
"""


def write_app(apps_dir: Path, app_id: str, code: str, **manifest: Any) -> Manifest:
    folder = apps_dir / app_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.py").write_text(textwrap.dedent(code))
    data = {"id": app_id, "name": app_id, "type": "service",
            "health": {"interval": 1, "timeout": 1, "failures": 2, "grace": 10}, **manifest}
    data = {k: v for k, v in data.items() if v is not None}  # health=None: a manifest without the section
    (folder / "homehelper.json").write_text(json.dumps(data))
    return load_manifest(folder, apps_dir)


def make_config(state_root: Path, **changes: Any) -> Config:
    """A config rooted in the test's state root, on a port range of its own."""
    config = load_config(state_root, environ={})
    # Tests start apps on the first ports of the range without asking the allocator: pick a range
    # whose first ports nothing holds (other test runs on this machine leave apps behind).
    lo = random.randrange(20000, 29000, 100)
    while not all(port_is_free(p) for p in range(lo, lo + 10)):
        lo = random.randrange(20000, 29000, 100)
    return attrs.evolve(config, apps_dir=state_root / "apps", service_ports=(lo, lo + 99), **changes)


