"""Hostile sources are refused with a message naming what is wrong, and nothing changes: option
injection and transport helpers in git URLs, credentials never shown back, archives that climb out or
hold links or too much, symlinks out of a folder, a subdir that leaves the source, an id already taken."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import httpx
import pytest
import trio

from homehelper.errors import BadRequest, SourceFailed
from homehelper.sources import fetch, git
from tests.sources.helpers import GOOD_MAIN, commit, manifest
from tests.web.conftest import start_live


@pytest.mark.parametrize("url", [
    "--upload-pack=touch /tmp/pwned", "-oProxyCommand=touch /tmp/pwned", "ext::sh -c touch% /tmp/pwned",
    "fd::17", "http://example.org/x.git", "ftp://example.org/x", "file://relative", "https://exa mple.org/x",
    "ssh://-oProxyCommand=x/y", "https://example.org/x\n--upload-pack=y",
])
def test_git_urls_that_could_run_commands_are_refused(url: str) -> None:
    with pytest.raises(BadRequest) as caught:
        git.check_url(url)
    assert "source" in caught.value.message


@pytest.mark.parametrize("ref", ["--upload-pack=x", "-b", "a..b", "main@{1}", "x.lock", "a b", "../main"])
def test_refs_that_are_options_or_odd_are_refused(ref: str) -> None:
    with pytest.raises(BadRequest):
        git.check_ref(ref)


def test_accepted_urls_and_redaction(tmp_path: Path) -> None:
    assert git.check_url("https://github.com/a/b.git") == "https://github.com/a/b.git"
    assert git.check_url("git@github.com:a/b.git") == "git@github.com:a/b.git"
    assert git.check_url("ssh://git@host/a/b") == "ssh://git@host/a/b"
    assert git.check_url(f"file://{tmp_path}") == str(tmp_path)
    assert git.redact("https://me:s3cret@host/a.git") == "https://me:***@host/a.git"
    assert git.redact("https://ghp_token@host/a.git") == "https://ghp_token:***@host/a.git"


def test_git_never_reads_the_users_config_and_allows_only_safe_protocols(tmp_path: Path) -> None:
    env = git.git_env(tmp_path)
    assert env["GIT_ALLOW_PROTOCOL"] == "https:ssh:file" and env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_CONFIG_GLOBAL"] == os.devnull and env["HOME"] == str(tmp_path)


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _stage(source: Path | str, work: Path, subdir: str = "", ref: str | None = None) -> fetch.Staged:
    work.mkdir(parents=True, exist_ok=True)
    return fetch.stage(str(source), subdir, ref, work, work)


def test_archive_members_that_climb_out_or_are_links_are_refused(tmp_path: Path) -> None:
    good = [_file("app/homehelper.json", manifest().encode()), _file("app/main.py", b"print(1)\n")]
    climb = _tar(tmp_path / "climb.tar.gz", [*good, _file("app/../../evil.py", b"x")])
    with pytest.raises(BadRequest, match="outside the app"):
        _stage(climb, tmp_path / "w1")
    link = tarfile.TarInfo("app/passwd")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(BadRequest, match="link"):
        _stage(_tar(tmp_path / "link.tar.gz", [*good, (link, None)]), tmp_path / "w2")
    absolute = _tar(tmp_path / "abs.tar.gz", [*good, _file("/etc/cron.d/x", b"x")])
    with pytest.raises(BadRequest, match="outside the app"):
        _stage(absolute, tmp_path / "w3")
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as zf:
        zf.writestr("homehelper.json", manifest())
        zf.writestr("../evil.py", "x")
    with pytest.raises(BadRequest, match="outside the app"):
        _stage(tmp_path / "z.zip", tmp_path / "w4")
    assert not (tmp_path / "evil.py").exists() and not (tmp_path.parent / "evil.py").exists()
    staged = _stage(_tar(tmp_path / "good.tar.gz", good), tmp_path / "w5")  # one top folder: the app
    assert staged.manifest.id == "notes" and staged.kind == "archive" and staged.version.startswith("local-")


def test_huge_archives_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch, "MAX_BYTES", 1000)  # the limit, not 200 MB of test data
    big = _tar(tmp_path / "big.tar.gz", [_file("homehelper.json", manifest().encode()),
                                          _file("blob.bin", b"\0" * 5000)])
    with pytest.raises(BadRequest, match="larger than"):
        _stage(big, tmp_path / "w")


def test_a_folder_with_a_symlink_out_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "app"
    src.mkdir()
    (src / "homehelper.json").write_text(manifest())
    (src / "main.py").write_text(GOOD_MAIN)
    (src / "ok.txt").write_text("x")
    (src / "inside").symlink_to("ok.txt")
    assert _stage(src, tmp_path / "w1").manifest.id == "notes"  # a link inside the app is fine
    (src / "secrets").symlink_to("../../../../../../../etc/shadow")
    with pytest.raises(BadRequest, match=r"symlink to '.*etc/shadow', outside the app"):
        _stage(src, tmp_path / "w2")
    (src / "secrets").unlink()
    (src / "again").symlink_to(src / "ok.txt")  # inside the source, but out of the installed copy
    with pytest.raises(BadRequest, match="absolute symlink"):
        _stage(src, tmp_path / "w3")


def test_a_source_without_a_manifest_is_refused_before_anything_is_copied(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    commit(repo, {"apps/notes/homehelper.json": manifest(), "apps/notes/main.py": GOOD_MAIN}, "v1")
    with pytest.raises(BadRequest, match=r"no homehelper\.json in the source: not a HomeHelper app"):
        _stage(repo, tmp_path / "w1")  # the app is in a subfolder: --subdir
    assert not (tmp_path / "w1" / "app").exists()
    with pytest.raises(BadRequest, match=r"no homehelper\.json"):
        _stage(tmp_path, tmp_path / "w2")  # a plain folder: not even looked through


def test_a_subdir_that_leaves_the_source_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    commit(repo, {"apps/notes/homehelper.json": manifest(), "apps/notes/main.py": GOOD_MAIN}, "v1")
    assert _stage(repo, tmp_path / "w1", subdir="apps/notes").manifest.id == "notes"
    for bad in ("../..", "/etc", "apps/../../x"):
        with pytest.raises(BadRequest, match="subdir"):
            _stage(repo, tmp_path / "w2", subdir=bad)
    with pytest.raises(SourceFailed, match="no-such-branch"):
        _stage(repo, tmp_path / "w3", subdir="apps/notes", ref="no-such-branch")


async def test_hostile_sources_through_the_api_change_nothing(nursery: trio.Nursery, state_root: Path) -> None:
    live = await start_live(nursery, state_root, n_apps=1)
    config = live.tree.config
    assert live.tree.deps.auth is not None
    token = live.tree.deps.auth.create_token("test")["token"]
    def apps() -> list[str]:
        return sorted(p.name for p in config.apps_dir.iterdir() if p.name != ".versions")

    before = apps()
    clash = state_root / "clash"
    commit(clash, {"homehelper.json": manifest("app-00"), "main.py": GOOD_MAIN}, "same id")
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {token}"},
                                 timeout=60) as c:
        for body, status, said in [
            ({"source": "--upload-pack=touch pwned"}, 400, "option to git"),
            ({"source": "ext::sh -c touch% pwned"}, 400, "transport helpers"),
            ({"source": str(clash)}, 409, "already"),
            ({"source": str(clash), "subdir": "../.."}, 400, "subdir"),
            ({"source": "https://me:s3cret@127.0.0.1:9/x.git"}, 502, "git clone failed"),
            ({"token": "not-a-preview"}, 404, "no such preview"),
        ]:
            r = await c.post("/api/apps/add", json=body)
            assert r.status_code == status, (body, r.text)
            assert said in r.json()["message"], r.text
            assert "s3cret" not in r.text
        r = await c.post("/api/apps/app-00/update")
        assert r.status_code == 409 and "not added from a source" in r.json()["message"]
    assert apps() == before
    assert [p.name for p in (config.apps_dir / ".versions").iterdir()] == [".staging"]  # only the staging area,
    assert not list((config.apps_dir / ".versions" / ".staging").iterdir())  # emptied
    assert not (state_root / "pwned").exists()
