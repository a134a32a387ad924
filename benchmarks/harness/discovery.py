"""Discovery time: the scanner's `scan_folder` beside a bare os.scandir + json.load of the same folders."""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from . import NotAvailable
from .synth import generate_folders


def baseline_scan(apps_dir: Path) -> list[Any]:
    """The least a scan must do: list the folders and parse each manifest."""
    out = []
    with os.scandir(apps_dir) as it:
        for entry in it:
            if entry.name.startswith((".", "_")) or not entry.is_dir():
                continue
            try:
                with open(os.path.join(entry.path, "homehelper.json"), "rb") as f:
                    out.append(json.load(f))
            except FileNotFoundError:
                continue
    return out


def discovery(state: Path, counts: list[int], rounds: int) -> list[dict[str, Any]]:
    try:
        from homehelper.actors.scanner import scan_folder
    except ImportError as exc:
        raise NotAvailable(f"homehelper.actors.scanner.scan_folder: {exc}") from None
    out = []
    for count in counts:
        folder = state / "discovery" / str(count)
        generate_folders(folder, count)
        found, invalid = scan_folder(folder)
        if len(found) != count or invalid:
            raise RuntimeError(f"scan_folder found {len(found)} of {count} apps, invalid: {list(invalid)[:3]}")
        baseline_scan(folder)
        scan_t, base_t = [], []
        for _ in range(rounds):  # interleaved: drift on a shared machine hits both alike
            t0 = time.perf_counter()
            scan_folder(folder)
            scan_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            baseline_scan(folder)
            base_t.append(time.perf_counter() - t0)
        scan, base = statistics.median(scan_t), statistics.median(base_t)
        out.append({"folders": count, "scan_ms": round(scan * 1000, 2), "baseline_ms": round(base * 1000, 2),
                    "ratio": round(scan / base, 2) if base else None,
                    "per_folder_us": round(scan / count * 1e6, 1)})
    return out
