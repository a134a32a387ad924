"""Writing a backup: one `.tar.gz` of a state root's config, password and token hashes, registry,
ports, approvals, options, every app's folder and data, and `backup.json` listing each file with
its size and sha256 (written last, so the checksums are of what really went in).

SQLite databases (found by their header, whatever their name) are copied with SQLite's backup
API into a snapshot first: a database an app is writing is never copied half-written. Secrets go
in only sealed with a passphrase (crypto.py), else they are left out. Symlinks and special files
are never followed or stored. Blocking: run it on a worker thread.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import io
import json
import os
import secrets
import shutil
import sqlite3
import stat
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

from .. import __version__
from ..config import Config
from ..errors import BackupError
from ..manifest import ID_RE, Manifest
from .crypto import seal
from .schedule import ARCHIVE_RE

FORMAT = "homehelper-backup"
VERSION = 1
MANIFEST = "backup.json"
SQLITE_HEADER = b"SQLite format 3\x00"
SIDECARS = ("-wal", "-shm", "-journal")  # a snapshot holds what they held
SKIP_IN_APP_FOLDER = ("__pycache__", ".venv", "venv")  # rebuilt, never backed up
STATE_FILES = ("config", "registry", "options")  # folders of small state files, copied whole
MAX_SKIPPED_NAMED = 100
PARTIAL = ".partial"  # an archive being written: `.<name>.<random>.partial`
STAGING = ".staging-"  # SQLite snapshots on their way into an archive
LEFTOVER_AGE = 6 * 3600.0  # older partial files are a killed run's (another node's run may share the folder)

Hook = Callable[[str, str], None]  # (app id, "before" | "after"): called around each app's data


def backup_folder(config: Config) -> Path:
    return Path(config.backup.dir).expanduser() if config.backup.dir else config.root / "backups"


def archive_name(node_id: str, now: float | None = None) -> str:
    return f"homehelper-{node_id}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}.tar.gz"


def unique_path(folder: Path, node_id: str, now: float | None = None) -> Path:
    """A new archive's path in `folder`: two backups within one second get two names."""
    name = archive_name(node_id, now)
    path, n = folder / name, 1
    while path.exists():
        path, n = folder / name.replace(".tar.gz", f"-{n}.tar.gz"), n + 1
    assert ARCHIVE_RE.match(path.name), path.name
    return path


class _Hashing:
    """Reads exactly `size` bytes of `f`, hashing them; a file that shrank meanwhile is an error."""

    def __init__(self, f: BinaryIO, size: int, name: str) -> None:
        self.f, self.left, self.name = f, size, name
        self.sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.f.read(n) if n else b""
        if len(data) < n:
            raise BackupError(f"{self.name} shrank while it was copied: declare \"backup\": {{\"stop\": true}} "
                              f"(or a pre command) for its app")
        self.left -= len(data)
        self.sha.update(data)
        return data


class Writer:
    """One archive being written: files added with their checksums, then `backup.json`."""

    def __init__(self, tar: tarfile.TarFile, staging: Path, cancel: threading.Event | None = None) -> None:
        self.tar, self.staging, self.cancel = tar, staging, cancel
        self.files: dict[str, dict[str, Any]] = {}
        self.skipped: list[str] = []
        self.sqlite: list[str] = []

    def add_bytes(self, name: str, data: bytes, mode: int = 0o600) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), mode, int(time.time())
        self.tar.addfile(info, io.BytesIO(data))
        self.files[name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    def add_file(self, src: Path, name: str) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise BackupError("the backup was cancelled (HomeHelper is stopping)")
        if not _storable(name):  # a restore would refuse the whole archive for it: left out, and said
            self.skip(name.encode("unicode_escape").decode("ascii"))  # shown escaped: \n, \udcff
            return
        try:
            fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:  # a symlink (O_NOFOLLOW), or gone since the listing
            self.skip(name)
            return
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):  # a FIFO, a device: never read (it could block forever)
                self.skip(name)
                return
            if f.read(16) == SQLITE_HEADER:
                self.sqlite.append(name)
                return self._add_snapshot(src, name, st.st_mode)
            f.seek(0)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = st.st_size, st.st_mode & 0o777, int(st.st_mtime)
            reader = _Hashing(f, st.st_size, name)
            self.tar.addfile(info, reader)  # type: ignore[arg-type,unused-ignore]  # read(n) is all tarfile uses
            self.files[name] = {"size": st.st_size, "sha256": reader.sha.hexdigest()}

    def _add_snapshot(self, src: Path, name: str, mode: int) -> None:
        """A consistent copy of a live SQLite database (its WAL included), through the backup API."""
        snap = self.staging / f"snap-{secrets.token_hex(6)}.sqlite"
        try:
            source = sqlite3.connect(f"file:{quote(str(src))}?mode=ro", uri=True, timeout=30)
            try:
                target = sqlite3.connect(snap)
                try:
                    source.backup(target)  # one read transaction: what a commit left, never half of one
                finally:
                    target.close()
            finally:
                source.close()
        except sqlite3.Error as exc:
            raise BackupError(f"{name}: SQLite could not copy this database: {exc}") from None
        try:
            with open(snap, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = size, mode & 0o777, int(time.time())
                reader = _Hashing(f, size, name)
                self.tar.addfile(info, reader)  # type: ignore[arg-type,unused-ignore]  # read(n) is all tarfile uses
                self.files[name] = {"size": size, "sha256": reader.sha.hexdigest()}
        finally:
            snap.unlink(missing_ok=True)

    def add_tree(self, folder: Path, prefix: str, exclude: tuple[str, ...] = (),
                 skip_dirs: tuple[str, ...] = ()) -> None:
        for path, rel in _walk(folder, skip_dirs):
            if _excluded(rel, exclude) or _is_sidecar(path):
                continue
            self.add_file(path, f"{prefix}/{rel}")

    def skip(self, name: str) -> None:
        self.skipped.append(name)


def _storable(name: str) -> bool:
    """Names a restore accepts: UTF-8, no control characters (a newline in a name could split a log line)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8, kept by the file system as surrogates
        return False
    return not any(ord(c) < 0x20 or ord(c) == 0x7F for c in name)


def _excluded(rel: str, globs: tuple[str, ...]) -> bool:
    """`rel` or a folder it is in matches a glob (`cache` leaves out all of cache/, as `cache/*` does)."""
    parts = rel.split("/")
    paths = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatchcase(p, g) for g in globs for p in paths)


def _walk(folder: Path, skip_dirs: tuple[str, ...]) -> Iterator[tuple[Path, str]]:
    """Files under `folder` (sorted, symlinked folders not followed) with their relative posix paths."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs)
        base = Path(dirpath)
        for name in sorted(filenames):
            path = base / name
            yield path, path.relative_to(folder).as_posix()
        for d in list(dirnames):
            if (base / d).is_symlink():
                dirnames.remove(d)


def _is_sidecar(path: Path) -> bool:
    for suffix in SIDECARS:
        if path.name.endswith(suffix):
            base = path.with_name(path.name[: -len(suffix)])
            try:
                with open(base, "rb") as f:
                    return f.read(16) == SQLITE_HEADER
            except OSError:
                return False
    return False


def data_apps(config: Config) -> list[str]:
    folder = config.root / "data"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if ID_RE.fullmatch(p.name) and p.is_dir() and not p.is_symlink())


def write_archive(config: Config, dest: Path, manifests: dict[str, Manifest], *, passphrase: str | None = None,
                  hook: Hook | None = None, cancel: threading.Event | None = None) -> dict[str, Any]:
    """Write the archive to `dest` (atomically: a partial file until it is complete); a summary.
    Setting `cancel` stops it at the next file (BackupError), its partial file removed."""
    if not dest.parent.is_dir():
        raise BackupError(f"the backup folder {dest.parent} does not exist (is the disk mounted?)")
    started = time.monotonic()
    partial = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}{PARTIAL}")
    staging = Path(tempfile.mkdtemp(prefix=STAGING, dir=dest.parent))
    try:
        # 0600: it holds the password's hash and every app's data, whatever the umask says
        with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            with tarfile.open(fileobj=out, mode="w:gz", compresslevel=6, format=tarfile.PAX_FORMAT) as tar:
                w = Writer(tar, staging, cancel)
                summary = _fill(w, config, manifests, passphrase, hook)
                w.add_bytes(MANIFEST, json.dumps(summary, indent=1, sort_keys=True).encode())
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, dest)
        _fsync_dir(dest.parent)
    except OSError as exc:
        raise BackupError(f"cannot write {dest}: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    size = dest.stat().st_size
    return {"path": str(dest), "name": dest.name, "size": size, "apps": summary["apps"],
            "data": summary["data"], "files": len(summary["files"]), "secrets": summary["secrets"],
            "sqlite": summary["sqlite"], "skipped": summary["skipped"],
            "seconds": round(time.monotonic() - started, 3)}


def _fill(w: Writer, config: Config, manifests: dict[str, Manifest], passphrase: str | None,
          hook: Hook | None) -> dict[str, Any]:
    root = config.root
    for sub in STATE_FILES:
        if (root / sub).is_dir():
            w.add_tree(root / sub, f"state/{sub}", exclude=("*.corrupt-*", ".*.tmp", "*.partial"))
    if (root / "history.sqlite").is_file():
        w.add_file(root / "history.sqlite", "state/history.sqlite")
    for app_id, m in sorted(manifests.items()):
        w.add_tree(m.path, f"apps/{app_id}", skip_dirs=SKIP_IN_APP_FOLDER)
    with_data = data_apps(config)
    for app_id in with_data:
        spec = manifests[app_id].backup if app_id in manifests else None
        try:
            if hook is not None:
                hook(app_id, "before")  # inside: an app stopped before a failing pre command starts again
            w.add_tree(config.data_dir(app_id), f"state/data/{app_id}", exclude=spec.exclude if spec else ())
        finally:
            if hook is not None:
                hook(app_id, "after")
    secrets_state = _add_secrets(w, root / "secrets", passphrase)
    return {"format": FORMAT, "version": VERSION, "homehelper": __version__, "node_id": config.node_id,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "apps": sorted(manifests),
            "data": with_data, "secrets": secrets_state, "sqlite": w.sqlite,
            "skipped": w.skipped[:MAX_SKIPPED_NAMED], "files": dict(w.files)}


def _add_secrets(w: Writer, folder: Path, passphrase: str | None) -> str:
    """'sealed' (in secrets.enc), 'left out' (no passphrase), or 'none' (there are none)."""
    files = [p for p in sorted(folder.glob("*.json")) if p.is_file() and not p.is_symlink()] \
        if folder.is_dir() else []
    if not files:
        return "none"
    if passphrase is None:
        return "left out"
    plain = json.dumps({p.name: base64.b64encode(p.read_bytes()).decode() for p in files}).encode()
    w.add_bytes("secrets.enc", seal(plain, passphrase))
    return "sealed"


def remove_leftovers(folder: Path, now: float | None = None) -> list[Path]:
    """Remove what a killed backup left in `folder` (partial archives, staging folders) hours ago."""
    now = time.time() if now is None else now
    removed = []
    for p in folder.iterdir():
        ours = (p.name.startswith(".homehelper-") and p.name.endswith(PARTIAL)) or p.name.startswith(STAGING)
        try:
            if ours and not p.is_symlink() and now - p.lstat().st_mtime > LEFTOVER_AGE:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
                removed.append(p)
        except OSError:
            continue
    return removed


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
