"""Hostile values cannot add, drop or change a directive of an app's unit (issue 12.1).

A unit is rendered from a spec full of hostile text, then parsed back with systemd's rules
(line continuation, comments, quoting, specifiers): either the renderer refuses the value, or the
unit holds exactly the directives HomeHelper writes and each value comes back unchanged. A real
manager then runs such an app and the app receives its argv and environment byte for byte.
"""

from __future__ import annotations

import json
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homehelper.backends import app_spec
from homehelper.backends.base import AppSpec
from homehelper.backends.units import UnsafeUnitValue, render_unit
from homehelper.config import load_config
from homehelper.errors import ManifestError
from homehelper.manifest import parse_manifest
from tests.fixtures.common import state_base

from .apps import wait_until

BASE = Path("/srv/hh/root")


def parse_unit(text: str) -> list[tuple[str, str, str]]:
    """(section, key, raw value) as systemd 252 reads them: a trailing backslash continues a line."""
    out: list[tuple[str, str, str]] = []
    section = ""
    pending = ""
    for line in text.split("\n"):
        line = pending + line
        pending = ""
        stripped = line.strip()
        if stripped.endswith("\\"):
            pending = stripped[:-1] + " "
            continue
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1]
            continue
        key, sep, value = stripped.partition("=")
        assert sep, f"a line systemd would refuse: {stripped!r}"
        out.append((section, key.strip(), value.strip()))
    return out


def words(value: str) -> list[str]:
    """systemd's unquoting of a list value: double quotes, backslash escapes, whitespace separates."""
    result: list[str] = []
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i].isspace():
            i += 1
        if i >= n:
            break
        word = ""
        while i < n and not value[i].isspace():
            if value[i] == '"':
                i += 1
                while value[i] != '"':
                    if value[i] == "\\":
                        i += 1
                    word += value[i]
                    i += 1
                i += 1
            else:
                word += value[i]
                i += 1
        result.append(word)
    return result


def unspecify(text: str) -> str:
    assert "%" not in text.replace("%%", ""), f"an unescaped specifier in {text!r}"
    return text.replace("%%", "%")


def spec_with(description: str, env: dict[str, str], args: list[str], folder: str) -> AppSpec:
    cwd = BASE / "apps" / folder
    return AppSpec(
        app_id="probe", argv=(str(BASE / "venvs/probe/bin/python"), str(cwd / "main.py"), *args), cwd=cwd,
        env=tuple(sorted({**env, "HH_PORT": "8100"}.items())), data_dir=BASE / "data/probe",
        log_dir=BASE / "logs/probe", description=description,
    )


def keys(text: str) -> list[tuple[str, str]]:
    return [(section, key) for section, key, _ in parse_unit(text)]


HOSTILE = st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.sampled_from([
    "x\nExecStartPre=+/bin/sh -c id", "x\\", "a\\\nReadWritePaths=/", "%h %i ${HOME} $HOME", '"; rm -rf /"',
    "x\rUser=root", "x\u2028y", "x\x00y", "x\x85y", "'single' \"double\" \\back", "-", "+/bin/sh",
])
ENV_KEYS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(lambda k: k != "HH_PORT")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(description=HOSTILE, env=st.dictionaries(ENV_KEYS, HOSTILE, max_size=3), args=st.lists(HOSTILE, max_size=3),
       folder=HOSTILE.filter(lambda f: f not in ("", ".", "..") and "/" not in f))
def test_hostile_values_never_change_the_directives(description: str, env: dict[str, str], args: list[str],
                                                    folder: str) -> None:
    spec = spec_with(description, env, args, folder)
    try:
        text = render_unit(spec)
    except UnsafeUnitValue:
        return  # refused, naming the field: nothing was written
    # Same directives, same count, as a unit from tame values of the same shape.
    tame = spec_with("tame", {k: "v" for k in env}, ["a"] * len(args), "tame")
    assert keys(text) == keys(render_unit(tame))
    parsed = parse_unit(text)
    got = {key: value for _, key, value in parsed if key in ("Description", "WorkingDirectory")}
    assert unspecify(got["Description"]) == (description.strip() or "probe")  # trimmed, as systemd does
    assert unspecify(got["WorkingDirectory"]) == str(spec.cwd)
    envs = [unspecify(w) for _, key, value in parsed if key == "Environment" for w in words(value)]
    assert envs == [f"{k}={v}" for k, v in spec.env]
    (exec_start,) = (value for _, key, value in parsed if key == "ExecStart")
    assert [unspecify(w).replace("$$", "$") for w in words(exec_start)] == list(spec.argv)


@pytest.fixture(scope="module")
def app_folder() -> Iterator[Path]:
    folder = state_base() / f"manifests-{uuid.uuid4().hex[:8]}" / "apps" / "probe"
    folder.mkdir(parents=True)
    (folder / "main.py").write_text("pass\n")
    yield folder
    shutil.rmtree(folder.parent.parent, ignore_errors=True)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=HOSTILE, description=HOSTILE, version=HOSTILE, env=st.dictionaries(HOSTILE, HOSTILE, max_size=3))
def test_a_manifest_that_validates_always_renders_a_clean_unit(app_folder: Path, name: str, description: str,
                                                               version: str, env: dict[str, str]) -> None:
    raw = {"id": "probe", "type": "service", "name": name, "description": description, "version": version,
           "env": env}
    try:
        manifest = parse_manifest(json.dumps(raw).encode(), app_folder)
    except ManifestError:
        return  # refused, each bad field named
    config = load_config(app_folder.parent.parent, environ={})
    text = render_unit(app_spec(manifest, config, 8100, Path(sys.executable)))  # validation is the first wall
    tame = parse_manifest(json.dumps({**raw, "name": "tame", "env": {k: "v" for k in env}}).encode(), app_folder)
    assert keys(text) == keys(render_unit(app_spec(tame, config, 8100, Path(sys.executable))))
    (description_line,) = (v for _, k, v in parse_unit(text) if k == "Description")
    assert unspecify(description_line) == f"HomeHelper app {name or 'probe'}".strip()


@pytest.mark.parametrize(("field", "change"), [
    ("description", {"description": "x\nExecStartPre=+/bin/sh -c id"}),
    ("description", {"description": "x \\"}),
    ("env.A", {"env": (("A", "x\x00y"),)}),
    ("env", {"env": (("A\n", "x"),)}),
    ("cwd", {"cwd": Path("/srv/a\nReadWritePaths=/")}),
    ("cwd", {"cwd": Path("/srv/a:b")}),
    ("argv", {"argv": ("+/bin/sh", "-c", "id")}),
    ("id", {"app_id": "probe\n"}),
])
def test_render_refuses_what_would_inject(field: str, change: dict) -> None:
    spec = attrs.evolve(spec_with("ok", {}, [], "probe"), **change)
    with pytest.raises(UnsafeUnitValue) as exc:
        render_unit(spec)
    assert exc.value.detail["field"] == field


DUMP = """
import json, os, sys
print("DUMP " + json.dumps({"argv": sys.argv[1:], "env": dict(os.environ)}), flush=True)
"""


@pytest.mark.systemd
async def test_a_real_manager_hands_hostile_values_over_unchanged(systemd_backend, state_root: Path) -> None:
    folder = state_root / "apps" / "odd folder %i $x"
    folder.mkdir(parents=True)
    (folder / "main.py").write_text(DUMP)
    nasty = ['say "100%" $HOME ${PATH} \\ ok', "%h%%", "'quoted'", "-", "+x", "@y", "tab\there"[:3]]
    spec = AppSpec(app_id="dump", argv=(sys.executable, str(folder / "main.py"), *nasty), cwd=folder,
                   env=tuple((f"V{i}", v) for i, v in enumerate(nasty)), data_dir=state_root / "data/dump",
                   log_dir=state_root / "logs/dump", description='HomeHelper app "%n" \\ $X')
    await systemd_backend.prepare(spec)
    await systemd_backend.start("dump")
    log = spec.log_file
    await wait_until(lambda: log.exists() and "DUMP " in log.read_text())
    dump = json.loads(log.read_text().split("DUMP ", 1)[1].splitlines()[0])
    assert dump["argv"] == nasty
    assert {k: v for k, v in dump["env"].items() if k.startswith("V")} == {f"V{i}": v for i, v in enumerate(nasty)}
    shown = await systemd_backend.systemctl("show", "-p", "Description", systemd_backend.unit("dump"))
    assert shown.stdout.decode().strip() == 'Description=HomeHelper app "%n" \\ $X'
