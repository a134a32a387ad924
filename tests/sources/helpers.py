"""Git repositories and app folders made in a test, for the sources tests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

GOOD_MAIN = """\
import http.server, os, pathlib
data = pathlib.Path(os.environ["HH_DATA_DIR"]) / "notes.txt"
if not data.exists():
    data.write_text("written by v1\\n")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
print("v1 up", flush=True)
http.server.HTTPServer((os.environ["HH_HOST"], int(os.environ["HH_PORT"])), H).serve_forever()
"""

BAD_MAIN = """\
import os, pathlib, sys
(pathlib.Path(os.environ["HH_DATA_DIR"]) / "notes.txt").write_text("v2 ruined it\\n")
print("v2 cannot start", flush=True)
sys.exit(3)
"""


def manifest(app_id: str = "notes", **extra: Any) -> str:
    return json.dumps({"id": app_id, "name": "Notes", "type": "service", "version": "1.0.0",
                       "health": {"interval": 1, "timeout": 1, "failures": 2, "grace": 2}, **extra})


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout.strip()


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    """Write `files` into `repo` (created if new) and commit them; the commit's hash."""
    if not (repo / ".git").exists():
        repo.mkdir(parents=True, exist_ok=True)
        git(repo, "init", "-q", "-b", "main")
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")
