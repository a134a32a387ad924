"""Reading a backup back: check everything, unpack into a temp folder, then swap it in.

An archive is refused, with one message naming what is wrong and nothing changed, when it is not a
complete gzip'd tar, when a member's checksum or size differs from `backup.json` (or a member is
missing, extra or listed twice), when a member is anything but a plain file or folder (symlinks,
hard links, devices), when a name is absolute, climbs out with `..` or lies outside the layout,
and when a member or the whole is larger than the limits. Blocking: run it on a worker thread.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import json
import os
import re
import secrets
import shutil
import tarfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import CHECKOUT, default_root
from ..errors import ArchiveRefused, Conflict
from ..manifest import ID_RE
from ..stateroot import lock_root
from .archive import FORMAT, MANIFEST, VERSION
from .crypto import unseal

MAX_MEMBER = 8 << 30  # one file: 8 GiB
MAX_MEMBERS = 500_000
MAX_MANIFEST = 64 << 20
_NAME = re.compile(
    rf"^(state/(config|registry|options)/[^\x00-\x1f\x7f]+|state/history\.sqlite|state/data/(?P<data>{ID_RE.pattern})(/[^\x00-\x1f\x7f]+)?|"
    rf"apps/(?P<app>{ID_RE.pattern})(/[^\x00-\x1f\x7f]+)?|secrets\.enc|backup\.json)$")
TOPS = ("config", "registry", "options", "data", "secrets", "history.sqlite")  # what a full restore replaces


def refuse(archive: Path, why: str) -> ArchiveRefused:
    return ArchiveRefused(f"{archive}: {why}; nothing was changed", archive=str(archive))


def _check_name(archive: Path, member: tarfile.TarInfo) -> str:
    name = member.name
    if name.startswith("/") or name.startswith("\\") or re.match(r"^[A-Za-z]:", name):
        raise refuse(archive, f"member {name[:100]!r} has an absolute path")
    if any(part in ("..", ".", "") for part in name.rstrip("/").split("/")):
        raise refuse(archive, f"member {name[:100]!r} climbs out of its folder ('..') or is not a clean path")
    if not (member.isfile() or member.isdir()):
        what = "a symlink" if member.issym() else "a hard link" if member.islnk() else "a device or FIFO"
        raise refuse(archive, f"member {name[:100]!r} is {what}; a backup holds plain files only")
    if not _NAME.match(name.rstrip("/")):
        raise refuse(archive, f"member {name[:100]!r} is not part of a HomeHelper backup")
    if member.size > MAX_MEMBER:
        raise refuse(archive, f"member {name[:100]!r} is {member.size} bytes, over the {MAX_MEMBER} limit")
    return name.rstrip("/")


def read_archive(archive: Path, dest: Path | None, want: Callable[[str], bool] = lambda name: True,
                 max_total: int | None = None) -> dict[str, Any]:
    """Check every member of `archive` against its `backup.json`, writing those `want` accepts under
    `dest`; the checked `backup.json`. ArchiveRefused for anything wrong (`dest` may then hold part)."""
    hashed: dict[str, tuple[int, str]] = {}
    manifest_bytes: bytes | None = None
    total = 0
    try:
        # gzip's own reader: it checks the CRC and length at the end, which tarfile's stream does not
        with gzip.open(archive, "rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
            for n, member in enumerate(tar, 1):
                if n > MAX_MEMBERS:
                    raise refuse(archive, f"more than {MAX_MEMBERS} members")
                name = _check_name(archive, member)
                if member.isdir():
                    continue
                if name in hashed or (name == MANIFEST and manifest_bytes is not None):
                    raise refuse(archive, f"member {name!r} is in the archive twice")
                total += member.size
                if max_total is not None and total > max_total:
                    raise refuse(archive, f"it unpacks to more than the {max_total >> 20} MiB free here")
                src = tar.extractfile(member)
                assert src is not None
                if name == MANIFEST:
                    if member.size > MAX_MANIFEST:
                        raise refuse(archive, f"{MANIFEST} is {member.size} bytes, over the limit")
                    manifest_bytes = src.read()
                    continue
                target = dest / name if dest is not None and want(name) else None
                try:
                    hashed[name] = (member.size, _copy(src, target, member.mode))
                except OSError as exc:
                    if exc.errno is None:  # gzip's: the stream, not the disk
                        raise
                    raise refuse(archive, f"cannot unpack {name!r}: {exc.strerror or exc}") from None
            while gz.read(1 << 20):  # to the end: a damaged stream is found here, not taken as the end
                pass
    except ArchiveRefused:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise refuse(archive, f"cannot read it: {exc.strerror or exc}") from None
        raise refuse(archive, f"it is damaged (not a complete gzip'd tar: {exc})") from None
    if manifest_bytes is None:
        raise refuse(archive, f"it has no {MANIFEST}: not a HomeHelper backup, or cut short")
    return _check_manifest(archive, manifest_bytes, hashed)


def _copy(src: Any, target: Path | None, mode: int) -> str:
    sha = hashlib.sha256()
    out = None
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        # never group- or world-writable, whatever the archive says
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, (mode & 0o755) | 0o600)
    try:
        while chunk := src.read(1 << 20):
            sha.update(chunk)
            if out is not None:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view):]
    finally:
        if out is not None:
            os.close(out)
    return sha.hexdigest()


def _check_manifest(archive: Path, raw: bytes, hashed: dict[str, tuple[int, str]]) -> dict[str, Any]:
    try:
        manifest = json.loads(raw)
        files = manifest["files"]
        if manifest.get("format") != FORMAT or not isinstance(files, dict):
            raise ValueError("not a HomeHelper backup")
        if not isinstance(manifest.get("version"), int) or manifest["version"] > VERSION:
            raise ValueError(f"format version {manifest.get('version')!r} is newer than this HomeHelper reads")
        listed = {name: (int(f["size"]), str(f["sha256"])) for name, f in files.items()}
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise refuse(archive, f"its {MANIFEST} is damaged: {exc}") from None
    missing = sorted(set(listed) - set(hashed))
    extra = sorted(set(hashed) - set(listed))
    if missing:
        raise refuse(archive, f"{len(missing)} listed file(s) are missing, e.g. {missing[0]!r}")
    if extra:
        raise refuse(archive, f"{len(extra)} file(s) are not in its {MANIFEST}, e.g. {extra[0]!r}")
    for name, (size, sha) in sorted(hashed.items()):
        if listed[name] != (size, sha):
            raise refuse(archive, f"the checksum of {name!r} does not match: the archive is damaged or was changed")
    return dict(manifest)


def free_bytes(folder: Path) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def _has_files(path: Path) -> bool:
    if path.is_file() or path.is_symlink():
        return True
    return path.is_dir() and any(p.is_file() or p.is_symlink() for p in path.rglob("*"))


def restore_root(archive: Path, root: Path, *, passphrase: str | None = None, without_secrets: bool = False,
                 force: bool = False) -> dict[str, Any]:
    """Restore a whole state root from `archive` (no HomeHelper may run on it); a summary."""
    made = [p for p in (root, root / "run") if not p.exists()]  # removed again when the restore is refused
    root.mkdir(parents=True, exist_ok=True)
    try:
        lock = lock_root(root)
    except Conflict as exc:
        raise Conflict(f"cannot restore into {root}: {exc.message}; nothing was changed") from None
    tmp = root / f".restore-{secrets.token_hex(6)}"
    done = False
    try:
        used = [t for t in TOPS if _has_files(root / t)]
        if used and not force:
            raise Conflict(f"{root} is not a fresh state root (it holds {', '.join(used)}): restore into an "
                           f"empty one, or pass --force to move what is there aside; nothing was changed")
        tmp.mkdir(mode=0o700)
        manifest = read_archive(archive, tmp, max_total=int(free_bytes(root) * 0.9))
        secrets_state = _restore_secrets(archive, tmp, passphrase, without_secrets)
        apps_dir = _apps_dir(root, tmp)
        aside = root / f"before-restore-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}" if used else None
        for top in TOPS:  # everything is checked: from here on, renames only
            new = tmp / "state" / top
            old = root / top
            if old.exists() or old.is_symlink():
                if aside is not None and _has_files(old):
                    aside.mkdir(exist_ok=True)
                    os.replace(old, aside / top)
                elif old.is_dir() and not old.is_symlink():
                    shutil.rmtree(old)
                else:
                    old.unlink()
            if new.exists():
                os.replace(new, old)
        (root / "data").mkdir(exist_ok=True)
        kept: list[str] = []
        apps_dir.mkdir(parents=True, exist_ok=True)
        for folder in sorted((tmp / "apps").iterdir()) if (tmp / "apps").is_dir() else ():
            target = apps_dir / folder.name
            if target.exists():
                kept.append(folder.name)  # this machine's copy of the app's code is kept
                continue
            shutil.move(str(folder), target)
        done = True
        return {"root": str(root), "apps": manifest.get("apps", []), "data": manifest.get("data", []),
                "apps_dir": str(apps_dir), "kept_app_folders": kept, "secrets": secrets_state,
                "moved_aside": str(aside) if aside else None, "created": manifest.get("created")}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        lock.release()
        if not done and made:  # refused: the folders this call made go too (the lock file first)
            (root / "run" / "lock").unlink(missing_ok=True)
            for p in reversed(made):
                with contextlib.suppress(OSError):
                    p.rmdir()


def _restore_secrets(archive: Path, tmp: Path, passphrase: str | None, without: bool) -> str:
    sealed = tmp / "secrets.enc"
    if not sealed.exists():
        return "none"
    if passphrase is None:
        if not without:
            raise refuse(archive, "it holds sealed secrets: give the passphrase (--passphrase-file), "
                                  "or --without-secrets to restore without them")
        sealed.unlink()
        return "left out"
    plain = unseal(sealed.read_bytes(), passphrase)
    sealed.unlink()
    try:
        files = {str(k): base64.b64decode(v) for k, v in json.loads(plain).items()}
    except (ValueError, AttributeError) as exc:
        raise refuse(archive, f"its sealed secrets are damaged: {exc}") from None
    folder = tmp / "state" / "secrets"
    folder.mkdir(parents=True, mode=0o700)
    for name, data in files.items():
        if not re.fullmatch(rf"{ID_RE.pattern}\.json", name):
            raise refuse(archive, f"its sealed secrets hold an unexpected name {name[:60]!r}")
        fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    return "restored"


def _apps_dir(root: Path, tmp: Path) -> Path:
    """Where the restored root's apps live: its config's `apps_dir`, else the default for `root`."""
    try:
        raw = json.loads((tmp / "state" / "config" / "config.json").read_bytes())
        if isinstance(raw, dict) and isinstance(raw.get("apps_dir"), str) and raw["apps_dir"]:
            return Path(raw["apps_dir"]).expanduser()
    except (OSError, ValueError):
        pass
    if CHECKOUT is not None and root.resolve() == default_root().resolve():
        return CHECKOUT / "apps"  # as load_config() does for a checkout's own state root
    return root / "apps"


def restore_app_data(archive: Path, root: Path, app_id: str) -> dict[str, Any]:
    """Replace one app's data folder with its copy in `archive` (the caller stops the app first)."""
    if not ID_RE.fullmatch(app_id):
        raise ArchiveRefused(f"{app_id[:60]!r} is not an app id")
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    tmp = data / f".restore-{app_id}-{secrets.token_hex(6)}"
    tmp.mkdir(mode=0o700)
    prefix = f"state/data/{app_id}/"
    try:
        manifest = read_archive(archive, tmp, want=lambda name: name.startswith(prefix))
        if app_id not in manifest.get("data", []):
            raise refuse(archive, f"it holds no data of {app_id} (apps with data: "
                                  f"{', '.join(manifest.get('data', [])) or 'none'})")
        new = tmp / "state" / "data" / app_id
        new.mkdir(parents=True, exist_ok=True)  # an app whose data folder was empty
        old = data / app_id
        previous = data / f".previous-{app_id}-{secrets.token_hex(6)}"
        if old.exists() or old.is_symlink():
            os.replace(old, previous)
        os.replace(new, old)
        if previous.is_dir() and not previous.is_symlink():
            shutil.rmtree(previous, ignore_errors=True)
        else:
            previous.unlink(missing_ok=True)
        files = sum(1 for n in manifest["files"] if n.startswith(prefix))
        return {"app": app_id, "archive": str(archive), "files": files, "created": manifest.get("created")}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
