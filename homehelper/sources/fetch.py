"""Bringing an app's files from a source into a staging folder, checked, before anything is installed.

A source is a git repository (URL or local path; a subfolder and a ref), a local folder, or a local
`.tar.gz`/`.tgz`/`.zip` archive. Whatever it holds is untrusted: member names that climb out (`..`,
absolute), links in an archive, symlinks in a folder or repository that resolve outside the app,
device files and FIFOs, more than MAX_BYTES or MAX_FILES are refused, naming the offender. The
manifest is read and validated from the staged copy; nothing reaches apps/ here. Blocking: run on a
worker thread.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

import attrs

from ..errors import BadRequest, ManifestError
from ..manifest import MANIFEST_NAME, Manifest, parse_manifest
from . import git

MAX_BYTES = 200 * 1024 * 1024  # an app's files, unpacked (its venv is built later, not counted)
MAX_FILES = 20000
MAX_ARCHIVE = 100 * 1024 * 1024
ARCHIVES = (".tar.gz", ".tgz", ".zip")


@attrs.frozen
class Staged:
    """An app's files checked into `folder` (a fresh folder under the staging area), not yet installed."""

    folder: Path  # the app itself (the subfolder of a repository already applied)
    manifest: Manifest
    kind: str  # git | folder | archive
    url: str  # as given (may hold credentials: never shown; see git.redact)
    subdir: str
    ref: str | None
    version: str  # the git commit, or a digest of the files


def kind_of(source: str) -> str:
    if source.lower().endswith(ARCHIVES) and Path(source).expanduser().is_file():
        return "archive"
    if "://" not in source and not git.is_commit(source) and Path(source).expanduser().is_dir() \
            and not (Path(source).expanduser() / ".git").exists():
        return "folder"
    return "git"


def check_subdir(subdir: str) -> str:
    if not subdir:
        return ""
    if not isinstance(subdir, str) or len(subdir) > 300 or "\x00" in subdir or "\\" in subdir:
        raise BadRequest("subdir: not a folder name")
    p = PurePosixPath(subdir)
    if p.is_absolute() or ".." in p.parts:
        raise BadRequest(f"subdir {subdir!r}: must stay inside the source (no '..', not absolute)")
    return str(p)


def stage(source: str, subdir: str, ref: str | None, work: Path, home: Path) -> Staged:
    """Fetch `source` into `work` (an empty folder of the caller's) and check it."""
    subdir = check_subdir(subdir)
    kind = kind_of(source)
    raw = work / "raw"
    if kind == "git":
        url = git.check_url(source)
        version = git.clone(url, ref, raw, home)
        shutil.rmtree(raw / ".git", ignore_errors=True)
    elif kind == "archive":
        if ref:
            raise BadRequest("--ref applies to git sources only")
        url = str(Path(source).expanduser().resolve())
        unpack(Path(url), raw)
        version = ""
    else:
        if ref:
            raise BadRequest("--ref applies to git sources only")
        url = str(Path(source).expanduser().resolve())
        version = ""
    base = raw if kind != "folder" else Path(url)
    if kind == "archive" and not subdir:
        base = _single_top(raw)
    app_src = base / subdir if subdir else base
    if not app_src.is_dir() or app_src.is_symlink():
        raise BadRequest(f"subdir {subdir!r}: no such folder in the source")
    if not (app_src / MANIFEST_NAME).is_file():  # before copying anything
        raise BadRequest(f"no {MANIFEST_NAME} in the source{' folder ' + subdir if subdir else ''}: "
                         "not a HomeHelper app (use --subdir for an app in a subfolder)")
    app = work / "app"
    copy_checked(app_src, app)
    if kind == "git":
        shutil.rmtree(raw, ignore_errors=True)
    try:
        manifest = parse_manifest((app / MANIFEST_NAME).read_bytes(), app)
    except ManifestError as exc:
        raise ManifestError(f"{MANIFEST_NAME} is invalid: {'; '.join(exc.errors)}", errors=exc.errors) from None
    return Staged(app, manifest, kind, url, subdir, ref, version or digest(app))


def _single_top(raw: Path) -> Path:
    """An archive of one folder (as GitHub's are) holds the app in that folder."""
    entries = [p for p in raw.iterdir()]
    if not (raw / MANIFEST_NAME).exists() and len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return raw


def copy_checked(src: Path, dest: Path) -> None:
    """Copy the tree `src` to `dest` (new), refusing what an app folder must not hold."""
    root = src.resolve()
    files = size = 0
    for dirpath, dirnames, filenames in os.walk(src):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not (here == src and d == ".git")]
        rel = here.relative_to(src)
        (dest / rel).mkdir(parents=True, exist_ok=True)
        for name in [*dirnames, *filenames]:
            p = here / name
            st = os.lstat(p)
            shown = str(rel / name)
            if stat.S_ISLNK(st.st_mode):
                if os.path.isabs(os.readlink(p)):  # inside the source now, outside the app once installed
                    raise BadRequest(f"{shown} is an absolute symlink ({os.readlink(p)!r}): only links "
                                     "relative to the app are accepted")
                target = p.resolve()
                if target != root and root not in target.parents:
                    raise BadRequest(f"{shown} is a symlink to {os.readlink(p)!r}, outside the app: refused")
                os.symlink(os.readlink(p), dest / rel / name)
                if name in dirnames:
                    dirnames.remove(name)  # its target is inside: copied there
                continue
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                raise BadRequest(f"{shown} is not a regular file (a device, FIFO or socket): refused")
            files += 1
            size += st.st_size
            _limits(files, size)
            shutil.copy2(p, dest / rel / name, follow_symlinks=False)
            os.chmod(dest / rel / name, (st.st_mode & 0o755) | 0o600)  # never group/world-writable


def _limits(files: int, size: int) -> None:
    if files > MAX_FILES:
        raise BadRequest(f"the source holds more than {MAX_FILES} files: refused")
    if size > MAX_BYTES:
        raise BadRequest(f"the source is larger than {MAX_BYTES // 2**20} MB: refused")


def _member_path(name: str) -> PurePosixPath:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or "\x00" in name or name.startswith("\\"):
        raise BadRequest(f"archive member {name[:200]!r} would land outside the app: refused")
    return p


def unpack(archive: Path, dest: Path) -> None:
    """Unpack a .tar.gz/.tgz/.zip into `dest` (new), member by member, refusing links and escapes."""
    if archive.stat().st_size > MAX_ARCHIVE:
        raise BadRequest(f"{archive.name} is larger than {MAX_ARCHIVE // 2**20} MB: refused")
    dest.mkdir()
    files = size = 0
    if archive.name.lower().endswith(".zip"):
        try:
            zf = zipfile.ZipFile(archive)
        except zipfile.BadZipFile as exc:
            raise BadRequest(f"{archive.name}: not a zip archive ({exc})") from None
        with zf:
            for info in zf.infolist():
                p = _member_path(info.filename)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise BadRequest(f"archive member {info.filename!r} is a link: refused")
                if info.is_dir():
                    (dest / p).mkdir(parents=True, exist_ok=True)
                    continue
                files += 1
                size += info.file_size
                _limits(files, size)
                (dest / p).parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as fin, open(dest / p, "xb") as fout:
                    _copy_bounded(fin, fout, info.filename)
        return
    try:
        tf = tarfile.open(archive, "r:gz")  # noqa: SIM115 - closed by the `with` below
    except (tarfile.TarError, OSError) as exc:
        raise BadRequest(f"{archive.name}: not a .tar.gz archive ({exc})") from None
    with tf:
        try:
            for member in tf:
                p = _member_path(member.name)
                if member.isdir():
                    (dest / p).mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isfile():
                    raise BadRequest(f"archive member {member.name!r} is a link or a special file: refused")
                files += 1
                size += member.size
                _limits(files, size)
                (dest / p).parent.mkdir(parents=True, exist_ok=True)
                member_file = tf.extractfile(member)
                assert member_file is not None
                with member_file, open(dest / p, "xb") as fout:
                    _copy_bounded(member_file, fout, member.name)
                os.chmod(dest / p, (member.mode & 0o755) | 0o600)
        except (tarfile.TarError, EOFError, OSError) as exc:
            if isinstance(exc, FileExistsError):
                raise BadRequest(f"archive member {exc.filename} appears twice: refused") from None
            raise BadRequest(f"{archive.name} is damaged: {exc}") from None


def _copy_bounded(fin: object, fout: object, name: str) -> None:
    total = 0
    while chunk := fin.read(1 << 20):  # type: ignore[attr-defined]
        total += len(chunk)
        if total > MAX_BYTES:  # a member lying about its size
            raise BadRequest(f"archive member {name!r} unpacks to more than {MAX_BYTES // 2**20} MB: refused")
        fout.write(chunk)  # type: ignore[attr-defined]


def digest(folder: Path) -> str:
    """A version name for files without a commit: the first 12 hex digits of their SHA-256."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(folder)):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            h.update(str(p.relative_to(folder)).encode() + b"\0")
            if not p.is_symlink():
                h.update(p.read_bytes())
    return "local-" + h.hexdigest()[:12]
