"""What the figures were measured on: CPU, memory, kernel, board, versions."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("homehelper", "trio", "trio-websocket", "hypercorn", "quart-trio", "quart", "redis", "psutil",
            "httpx", "attrs", "streamlit")
DEVICE_TREE_MODEL = Path("/proc/device-tree/model")


def board_model(path: Path = DEVICE_TREE_MODEL) -> str | None:
    """"Raspberry Pi 5 Model B Rev 1.0" on a Pi; None where there is no device tree (x86, VMs)."""
    try:
        return path.read_bytes().rstrip(b"\x00\n").decode(errors="replace") or None
    except OSError:
        return None


def is_raspberry_pi(model: str | None) -> bool:
    return bool(model) and "raspberry pi" in str(model).lower()


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return platform.processor() or platform.machine()
    for key in ("model name", "Model", "Hardware", "Processor", "cpu model"):
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:
        return None


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _tool_version(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr) else None


def git_commit(repo: Path) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=5).stdout.strip()
    return done.stdout.strip() + ("+dirty" if dirty else "")


def machine_info(profile: dict[str, Any] | None = None, repo: Path | None = None) -> dict[str, Any]:
    model = board_model()
    mem = _memory_bytes()
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "arch": platform.machine(),
        "memory_mb": round(mem / 2**20) if mem else None,
        "kernel": platform.release(),
        "os": _os_name(),
        "python": sys.version.split()[0],
        "python_impl": platform.python_implementation(),
        "board_model": model,
        "raspberry_pi": is_raspberry_pi(model),
        "packages": package_versions(),
        "redis_server": _tool_version(["redis-server", "--version"]),
        "git_commit": git_commit(repo) if repo is not None else None,
        "profile": profile,
    }


def _os_name() -> str | None:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return None
