"""A damaged, tampered or unsafe archive is refused with a message naming what is wrong, and the
state root it was to go into is left exactly as it was."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from homehelper.backup.archive import write_archive
from homehelper.backup.restore import MAX_MEMBER, restore_app_data, restore_root
from homehelper.errors import ArchiveRefused
from tests.backup.helpers import add_listed, flipped_bytes, listing, make_root, manifests, members, rewrite, with_member


@pytest.fixture
def good(state_root: Path) -> Path:
    config = make_root(state_root / "src")
    archive = state_root / "good.tar.gz"
    write_archive(config, archive, manifests(config))
    return archive


def flipped(good: Path, out: Path) -> Path:
    out.write_bytes(flipped_bytes(good.read_bytes()))
    return out


def truncated(good: Path, out: Path) -> Path:
    out.write_bytes(good.read_bytes()[: len(good.read_bytes()) * 2 // 3])
    return out


def changed_file(good: Path, out: Path) -> Path:
    items = [(i, b"evil\n" if i.name == "state/data/notes/notes.txt" else d) for i, d in members(good)]
    return rewrite(good, out, items)


def extra_file(good: Path, out: Path) -> Path:
    return with_member(good, out, tarfile.TarInfo("state/data/notes/planted.txt"), b"x")


def missing_file(good: Path, out: Path) -> Path:
    return rewrite(good, out, [(i, d) for i, d in members(good) if i.name != "state/registry/ports.json"])


def traversal(good: Path, out: Path) -> Path:
    return rewrite(good, out, add_listed(members(good), "state/data/notes/../../../escape.txt", b"x"))


def absolute(good: Path, out: Path) -> Path:
    return rewrite(good, out, add_listed(members(good), "/etc/cron.d/evil", b"x"))


def outside_layout(good: Path, out: Path) -> Path:
    return rewrite(good, out, add_listed(members(good), "run/cli-token", b"x"))


def symlink(good: Path, out: Path) -> Path:
    info = tarfile.TarInfo("state/data/notes/passwd")
    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    return with_member(good, out, info)


def hardlink(good: Path, out: Path) -> Path:
    info = tarfile.TarInfo("state/data/notes/hard")
    info.type, info.linkname = tarfile.LNKTYPE, "state/config/auth.json"
    return with_member(good, out, info)


def oversized(good: Path, out: Path) -> Path:
    # A header claiming more than the limit: refused before a byte of it is read.
    info = tarfile.TarInfo("state/data/notes/huge.bin")
    info.size = MAX_MEMBER + 1
    raw = io.BytesIO()
    raw.write(info.tobuf(format=tarfile.PAX_FORMAT))
    out.write_bytes(gzip.compress(raw.getvalue() + b"\0" * 1024))
    return out


def not_an_archive(good: Path, out: Path) -> Path:
    out.write_text("hello, I am a text file\n")
    return out


def no_manifest(good: Path, out: Path) -> Path:
    return rewrite(good, out, [(i, d) for i, d in members(good) if i.name != "backup.json"])


DAMAGE: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "flipped byte": (flipped, "damaged|checksum"),
    "truncated": (truncated, "damaged"),
    "changed file": (changed_file, "checksum of 'state/data/notes/notes.txt' does not match"),
    "extra file": (extra_file, "not in its backup.json"),
    "missing file": (missing_file, "missing"),
    "path traversal": (traversal, r"climbs out"),
    "absolute path": (absolute, "absolute path"),
    "outside the layout": (outside_layout, "not part of a HomeHelper backup"),
    "symlink": (symlink, "is a symlink"),
    "hard link": (hardlink, "is a hard link"),
    "oversized member": (oversized, "over the .* limit"),
    "not an archive": (not_an_archive, "damaged"),
    "no manifest": (no_manifest, "no backup.json"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_archive_is_refused_and_changes_nothing(damage: str, good: Path, state_root: Path) -> None:
    make, message = DAMAGE[damage]
    bad = make(good, state_root / "bad.tar.gz")
    target = state_root / "target"  # a fresh root: not there yet
    before = listing(state_root)
    with pytest.raises(ArchiveRefused, match=message) as caught:
        restore_root(bad, target)
    assert "nothing was changed" in caught.value.message
    assert listing(state_root) == before and not target.exists()
    src = state_root / "src"
    before = listing(src)
    with pytest.raises(ArchiveRefused, match=message):
        restore_app_data(bad, src, "notes")
    assert listing(src) == before
    assert not (state_root / "escape.txt").exists()


def test_a_file_where_a_folder_must_go_is_refused_by_name(good: Path, state_root: Path) -> None:
    items = add_listed(add_listed(members(good), "state/data/notes/x", b"a file"), "state/data/notes/x/y", b"under it")
    bad = rewrite(good, state_root / "bad.tar.gz", items)
    with pytest.raises(ArchiveRefused, match="cannot unpack 'state/data/notes/x/y'"):
        restore_root(bad, state_root / "target")
    assert not (state_root / "target").exists()


def test_unpacked_files_are_never_group_or_world_writable(good: Path, state_root: Path) -> None:
    items = [(info, data) for info, data in members(good)]
    for info, _ in items:
        info.mode = 0o777
    loose = rewrite(good, state_root / "loose.tar.gz", items, keep_mode=True)
    umask = os.umask(0)  # the archive's word alone, not the umask's, decides
    try:
        restore_root(loose, state_root / "target")
    finally:
        os.umask(umask)
    modes = {p.stat().st_mode & 0o777 for p in (state_root / "target").rglob("*") if p.is_file()}
    assert modes and all(m & 0o022 == 0 for m in modes), modes
