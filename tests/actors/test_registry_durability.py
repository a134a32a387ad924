"""A kill -9 at any moment leaves the last good registry on disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

WRITER = r"""
import sys
from pathlib import Path
from homehelper.actors.registry import AppRecord, Registry

path = Path(sys.argv[1])
reg = Registry(apps=None, factory=None, broadcast=None, state_file=path)
i = 0
while True:
    i += 1
    # every app carries the same generation number: a torn write would show a mix
    reg.records = {f"app{k}": AppRecord(f"app{k}", f"App {k}", "service", f"app{k}", f"{i:064d}",
                                        desired="running" if i % 2 else "stopped", port=8100 + k)
                   for k in range(20)}
    reg._save()
    if i == 1:
        print("ready", flush=True)
"""


def test_registry_survives_kill_9_while_writing(tmp_path: Path) -> None:
    path = tmp_path / "registry" / "apps.json"
    generations = []
    for round_ in range(8):
        with subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(0.05 + 0.03 * round_)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        data = json.loads(path.read_text())  # always complete, valid JSON
        assert len(data) == 20
        gens = {rec["digest"] for rec in data.values()}
        assert len(gens) == 1, "a mix of two generations means a torn write"
        generations.append(int(gens.pop()))
    assert max(generations) > 1
    leftovers = [p.name for p in path.parent.iterdir() if p.name != "apps.json"]
    assert all(name.endswith(".tmp") for name in leftovers)  # at most a temp file, never a half registry
