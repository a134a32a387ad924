"""Running git on a source the user typed in, safely: which URLs, which options, how long.

A source URL is untrusted text. Only `https://`, `ssh://`, scp-like `git@host:path` and local paths
(a folder, or `file://`) are accepted; nothing starting with `-` (an option to git), no `ext::` or
other `<transport>::` helpers, no control characters. git itself is held to the same protocols
(`GIT_ALLOW_PROTOCOL`), never prompts, reads no system or user config, and every URL and ref goes
after `--end-of-options`/`--`. Each call has a timeout and runs in a process group killed at the end;
these functions block, so callers run them on a worker thread.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

from ..errors import BadRequest, SourceFailed

GIT_TIMEOUT = 300.0  # a clone over a Pi's Wi-Fi
CHECK_TIMEOUT = 60.0  # one ls-remote
MAX_URL = 2000
OUTPUT_TAIL = 2000
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!//)[A-Za-z0-9._~/-][^\s]*$")
_REF = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/+-]{1,200}$")
_HEX = re.compile(r"^[0-9a-f]{7,40}$")
_USERINFO = re.compile(r"(://[^/\s:@]*):[^@\s/]+@")
_CTRL = re.compile(r"[\x00-\x1f\x7f]")


def redact(url: str) -> str:
    """`url` without a password or token (`https://user:***@host/x`), fit to show or log."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return url
    userinfo, _, host = authority.rpartition("@")
    user = userinfo.partition(":")[0]
    return f"{scheme}://{user}:***@{host}{slash}{path}" if user else f"{scheme}://***@{host}{slash}{path}"


def check_url(url: str) -> str:
    """The URL to hand to git (a local path made absolute), or BadRequest naming what is wrong."""
    if not isinstance(url, str) or not url:
        raise BadRequest("source: give a git URL, a folder or an archive")
    if len(url) > MAX_URL:
        raise BadRequest(f"source: longer than {MAX_URL} characters")
    shown = redact(url)
    if url.startswith("-"):
        raise BadRequest(f"source {shown!r}: a source starting with '-' would be an option to git; refused")
    if "::" in url.split("/", 1)[0] or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*::", url):
        raise BadRequest(f"source {shown!r}: git transport helpers ('ext::' and the like) are refused")
    if _CTRL.search(url):
        raise BadRequest(f"source {shown!r}: control characters are refused")
    lower = url.lower()
    if "://" in url and " " in url:
        raise BadRequest(f"source {shown!r}: a URL with spaces is refused")
    if lower.startswith(("https://", "ssh://")):
        host = url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2]
        if not host or host.startswith("-"):
            raise BadRequest(f"source {shown!r}: no host")
        return url
    if lower.startswith("file://"):
        return check_url(url[len("file://"):]) if url[7:8] == "/" else _refuse(shown)
    if "://" in url:
        return _refuse(shown)
    if _SCP_LIKE.match(url):
        return url
    path = Path(url).expanduser()
    if path.is_dir():
        return str(path.resolve())
    raise BadRequest(f"source {shown!r}: no such folder, and not a git URL (https://, ssh://, git@host:path)")


def _refuse(shown: str) -> str:
    raise BadRequest(f"source {shown!r}: only https://, ssh://, git@host:path and local paths are accepted")


def check_ref(ref: str) -> str:
    if not isinstance(ref, str) or not _REF.match(ref) or ref.endswith((".lock", "/", ".")) or "@{" in ref:
        raise BadRequest(f"ref {str(ref)[:80]!r}: not a branch, tag or commit name")
    return ref


def is_commit(ref: str) -> bool:
    return bool(_HEX.match(ref))


def git_env(home: Path) -> dict[str, str]:
    """An environment with nothing of the user's git setup in it, and no prompt ever."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ", "SSH_AUTH_SOCK", "USER")}
    env.update(HOME=str(home), GIT_ALLOW_PROTOCOL="https:ssh:file", GIT_TERMINAL_PROMPT="0",
               GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_ASKPASS="/bin/false",
               SSH_ASKPASS="/bin/false", GIT_SSH_COMMAND="ssh -o BatchMode=yes -o ConnectTimeout=20",
               GIT_LFS_SKIP_SMUDGE="1")
    return env


_HARDEN = ["-c", "protocol.ext.allow=never", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false",
           "-c", "submodule.recurse=false", "-c", "credential.helper="]


def run_git(args: list[str], cwd: Path, home: Path, timeout: float = GIT_TIMEOUT, secret: str = "") -> str:
    """git's stdout; SourceFailed with its last words (redacted) on failure or timeout."""
    proc = subprocess.Popen(["git", *_HARDEN, *args], cwd=cwd, env=git_env(home), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise SourceFailed(f"git {args[0]} took longer than {timeout:g} s; stopped") from None
    finally:
        _kill(proc)
    if proc.returncode != 0:
        said = err.decode(errors="replace")[-OUTPUT_TAIL:].strip()
        if secret:
            said = said.replace(secret, redact(secret))
        said = _USERINFO.sub(r"\1:***@", said)  # any other spelling of a URL with a password
        raise SourceFailed(f"git {args[0]} failed: {said or f'exit status {proc.returncode}'}")
    return out.decode(errors="replace")


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # its ssh or remote helper too
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def clone(url: str, ref: str | None, dest: Path, home: Path) -> str:
    """Clone `url` into `dest` checked out at `ref` (default: the remote's HEAD); the commit checked out."""
    run_git(["clone", "--quiet", "--no-checkout", "--no-hardlinks", "--", url, str(dest)], dest.parent, home,
            secret=url)
    target = "HEAD" if ref is None else check_ref(ref)
    commit = ""
    for candidate in ([target] if target == "HEAD" or is_commit(target) else [f"origin/{target}", target]):
        try:
            commit = run_git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{candidate}^{{commit}}"],
                             dest, home).strip()
            break
        except SourceFailed:
            continue
    if not commit:
        raise SourceFailed(f"ref {target!r} is neither a branch, a tag nor a commit of {redact(url)}")
    run_git(["checkout", "--quiet", "--detach", commit], dest, home)
    return commit


def remote_commit(url: str, ref: str | None, home: Path) -> str:
    """The commit `ref` (a branch or tag; default HEAD) points to on the remote, without cloning."""
    target = "HEAD" if ref is None else check_ref(ref)
    out = run_git(["ls-remote", "--end-of-options", url, target], home, home, timeout=CHECK_TIMEOUT, secret=url)
    found: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, name = line.partition("\t")
        found[name] = sha
    for name in (target, f"refs/heads/{target}", f"refs/tags/{target}^{{}}", f"refs/tags/{target}"):
        if name in found:
            return found[name]
    raise SourceFailed(f"{redact(url)} has no branch or tag {target!r}")
