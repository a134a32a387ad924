"""A small state root with two apps (one writing SQLite), and ways to damage an archive."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sqlite3
import tarfile
import zlib
from pathlib import Path
from typing import Any

from homehelper.actors.scanner import scan_folder
from homehelper.config import Config
from homehelper.manifest import Manifest

NOTES_MAIN = "import time\nwhile True: time.sleep(1)\n"


def make_root(root: Path) -> Config:
    """config, auth, registry, two apps with data (one SQLite with a WAL, one with an excluded cache)."""
    config = Config(root=root, apps_dir=root / "apps")
    for app_id, backup in (("notes", {"exclude": ["cache/*", "logs"]}), ("meter", {})):
        folder = config.apps_dir / app_id
        folder.mkdir(parents=True)
        (folder / "homehelper.json").write_text(json.dumps({"id": app_id, "type": "service", "backup": backup}))
        (folder / "main.py").write_text(NOTES_MAIN)
        (folder / "__pycache__").mkdir()
        (folder / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"rebuilt")
    (root / "config").mkdir(parents=True)
    (root / "config" / "config.json").write_text(json.dumps({"port": 8123}))
    (root / "config" / "auth.json").write_text(json.dumps({"password": {"hash": "ab"}, "tokens": []}))
    (root / "registry").mkdir()
    (root / "registry" / "ports.json").write_text(json.dumps({"notes": 8101, "meter": 8102}))
    notes = config.data_dir("notes")
    (notes / "cache").mkdir(parents=True)
    (notes / "cache" / "big.bin").write_bytes(b"x" * 1000)
    (notes / "notes.txt").write_text("milk\n")
    (notes / "link").symlink_to("/etc/passwd")
    (notes / "bad\nname.txt").write_text("a newline in a name")
    (notes / "logs").mkdir()
    (notes / "logs" / "old.log").write_text("left out by a folder's name")
    meter = config.data_dir("meter")
    meter.mkdir(parents=True)
    db = sqlite3.connect(meter / "readings.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE r (n INTEGER)")
    db.executemany("INSERT INTO r VALUES (?)", [(i,) for i in range(100)])
    db.commit()
    db.close()
    return config


def manifests(config: Config) -> dict[str, Manifest]:
    found, _ = scan_folder(config.apps_dir)
    return {m.id: m for m in found}


def listing(root: Path) -> dict[str, str]:
    """Every file under `root` with its sha256 (symlinks by target): what 'nothing changed' compares."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "-> " + str(p.readlink())
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


def members(archive: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(archive, "r:gz") as tar:
        return [(m, tar.extractfile(m).read() if m.isfile() else b"") for m in tar.getmembers()]  # type: ignore[union-attr]


def rewrite(archive: Path, out: Path, items: list[tuple[tarfile.TarInfo, bytes]], keep_mode: bool = False) -> Path:
    """A well-formed gzip'd tar of `items` (tampering that keeps the container intact)."""
    with tarfile.open(out, "w:gz") as tar:
        for old, data in items:
            info = tarfile.TarInfo(old.name) if old.isfile() else old
            if keep_mode:
                info.mode = old.mode
            if not info.issym() and not info.islnk() and not info.isdir() and info.type in (tarfile.REGTYPE,
                                                                                         tarfile.AREGTYPE):
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return out


def with_member(archive: Path, out: Path, info: tarfile.TarInfo, data: bytes = b"") -> Path:
    items = members(archive)
    if info.isfile():
        info.size = len(data)
    return rewrite(archive, out, [*items[:1], (info, data), *items[1:]])


def add_listed(items: list[tuple[tarfile.TarInfo, bytes]], name: str, data: bytes) -> list[Any]:
    """Add a file and list it in backup.json with its true checksum (a tamperer who knows the format)."""
    out = []
    for info, body in items:
        if info.name == "backup.json":
            manifest = json.loads(body)
            manifest["files"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            body = json.dumps(manifest).encode()
            out.append((tarfile.TarInfo(name), data))
        out.append((info, body))
    return out


def flipped_bytes(archive: bytes) -> bytes:
    """The archive with one byte flipped from the middle on, where it damages what the archive holds.
    A flip inside a deflate block's header can leave every byte it unpacks to the same, CRC and all
    (one archive in about twenty here): that archive is not damaged, and restoring it is right."""
    for at in range(len(archive) // 2, len(archive)):
        damaged = bytearray(archive)
        damaged[at] ^= 0xFF
        try:
            if gzip.decompress(bytes(damaged)) != gzip.decompress(archive):
                return bytes(damaged)
        except (OSError, EOFError, zlib.error):
            return bytes(damaged)
    raise AssertionError("no flip damages this archive")
