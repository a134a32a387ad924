"""AppSpec.secrets reach the app's process and nothing else: not the unit, not `systemctl show`."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from homehelper.backends import ProcessBackend, SystemdBackend, app_spec
from homehelper.backends.base import env_file_text
from homehelper.backends.units import render_unit
from homehelper.errors import BackendError

from .apps import make_config, wait_until, write_app

# Everything systemd's EnvironmentFile= parser treats specially, and the shell too.
HOSTILE = 'a "quoted" \'single\' \\back\\slash $HOME ${X} `id` 100% ;& #not-a-comment \n second line  '
PASSWORD = "s3cret-Pa55word_xyz"
URL = f"redis://hh-app.main.envy:{PASSWORD}@127.0.0.1:6379/0"
SECRETS = (("HH_REDIS_URL", URL), ("ODD_SECRET", HOSTILE))

DUMP_ENV = """
import json, os, time
names = ("HH_REDIS_URL", "ODD_SECRET", "PUBLIC")
with open(os.path.join(os.environ["HH_DATA_DIR"], "env.json"), "w") as f:
    json.dump({k: os.environ.get(k) for k in names}, f)
time.sleep(120)
"""


def test_env_file_text_quotes_what_systemd_would_read_otherwise():
    text = env_file_text((("A", 'x"y\\z$w`v'), ("B", "two\nlines")))
    assert text == 'A="x\\"y\\\\z\\$w\\`v"\nB="two\nlines"\n'
    with pytest.raises(BackendError, match="not a valid"):
        env_file_text((("BAD NAME", "x"),))
    with pytest.raises(BackendError, match="NUL"):
        env_file_text((("A", "x\0y"),))


def test_the_unit_names_the_file_never_the_secret(state_root: Path) -> None:
    config = make_config(state_root, redis_url="redis://hh:own-pw@127.0.0.1:6379/0")
    manifest = write_app(config.apps_dir, "envy", "pass\n")
    spec = app_spec(manifest, config, 8100, Path(sys.executable), secrets=SECRETS)
    unit = render_unit(spec, secrets_file=state_root / "run" / "secrets" / "envy.env")
    assert f"EnvironmentFile={state_root}/run/secrets/envy.env\n" in unit
    assert PASSWORD not in unit and "own-pw" not in unit and "HH_REDIS_URL" not in unit
    assert "EnvironmentFile" not in render_unit(app_spec(manifest, config, 8100, Path(sys.executable)))
    # the config's URL is not in the environment either: only the secrets carry one
    assert "HH_REDIS_URL" not in dict(spec.env)


async def _started(backend: SystemdBackend | ProcessBackend, state_root: Path) -> tuple[dict[str, str], Path]:
    config = make_config(state_root)
    # `lan`: on the host's network its URL is handed over as given (a walled app's goes through its
    # relay: tests/backends/test_netwall.py)
    manifest = write_app(config.apps_dir, "envy", DUMP_ENV, env={"PUBLIC": "visible"}, permissions=["lan"])
    await backend.prepare(app_spec(manifest, config, config.service_ports[0], Path(sys.executable), secrets=SECRETS))
    await backend.start("envy")
    dump = config.data_dir("envy") / "env.json"
    await wait_until(lambda: dump.exists() and dump.stat().st_size > 0)
    return json.loads(dump.read_text()), config.run_dir


@pytest.mark.systemd
async def test_systemd_hands_secrets_over_in_a_private_file(systemd_backend: SystemdBackend, systemd_user,
                                                            state_root: Path) -> None:
    run_dir = state_root / "run"
    backend = SystemdBackend("user", environ=systemd_backend.environ, prefix=systemd_backend.prefix,
                             secrets_at=run_dir / "secrets")
    env, _ = await _started(backend, state_root)
    try:
        assert env == {"HH_REDIS_URL": URL, "ODD_SECRET": HOSTILE, "PUBLIC": "visible"}  # exactly as given
        unit = backend.unit("envy")
        shown = systemd_user.systemctl("show", unit).stdout
        assert "PUBLIC=visible" in shown and "EnvironmentFiles=" in shown  # the show works, and names the file
        assert PASSWORD not in shown and "second line" not in shown and "HH_REDIS_URL" not in shown
        assert PASSWORD not in (backend.unit_dir / unit).read_text()
        secrets_file = run_dir / "secrets" / "envy.env"
        assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(secrets_file.parent.stat().st_mode) == 0o700
        before = secrets_file.stat()
        config = make_config(state_root)
        manifest = write_app(config.apps_dir, "envy", DUMP_ENV, env={"PUBLIC": "visible"}, permissions=["lan"])
        await backend.prepare(app_spec(manifest, config, config.service_ports[0], Path(sys.executable),
                                       secrets=SECRETS))
        assert secrets_file.stat().st_ino == before.st_ino  # unchanged: not written again
    finally:
        await backend.remove("envy")
    assert not (run_dir / "secrets" / "envy.env").exists()


async def test_the_process_backend_puts_secrets_in_the_childs_environment_only(state_root: Path) -> None:
    backend = ProcessBackend(state_root / "run" / "procs")
    env, run_dir = await _started(backend, state_root)
    try:
        assert env == {"HH_REDIS_URL": URL, "ODD_SECRET": HOSTILE, "PUBLIC": "visible"}
        for path in run_dir.rglob("*"):
            if path.is_file():
                assert PASSWORD not in path.read_text(errors="replace"), path
    finally:
        await backend.remove("envy")
