"""Unit files: valid for systemd 252 and sandboxed as documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from homehelper.backends import app_spec
from homehelper.backends.logsearch import stamp_of
from homehelper.backends.sandbox import OWN_PATHS
from homehelper.backends.units import render_unit

from .apps import make_config, wait_until, write_app

pytestmark = pytest.mark.systemd

# What `systemd-analyze security` says of the default unit (lower is safer); docs/services.md records it.
MAX_EXPOSURE = 2.0

SANDBOX_PROBE = """
import os, pathlib
results = []
for target in (os.environ["HH_DATA_DIR"], os.environ["HH_LOG_DIR"], os.getcwd(), "/etc", "/var/tmp"):
    try:
        pathlib.Path(target, "probe").write_text("x")
        results.append(f"{target}=rw")
    except OSError:
        results.append(f"{target}=ro")
print("PROBE", " ".join(results), "tmp=" + ",".join(sorted(os.listdir("/tmp"))), flush=True)
import time; time.sleep(60)
"""


def test_unit_for_version_252_has_no_newer_keys(state_root: Path) -> None:
    config = make_config(state_root)
    manifest = write_app(config.apps_dir, "plain", "pass\n")
    text = render_unit(app_spec(manifest, config, 8100))
    assert "RestartSteps" not in text and "RestartMaxDelaySec" not in text
    unit, service = text.split("[Service]")
    assert "StartLimitIntervalSec=0" in unit and "StartLimit" not in service
    assert "Restart=no" in service  # HomeHelper owns the restart policy
    assert "User=" not in service and "WantedBy=default.target" in text
    assert "User=pi\n" in render_unit(app_spec(manifest, config, 8100), user="pi")
    assert re.search(r"^MemoryMax=256M$", service, re.M) and re.search(r"^CPUQuota=50%$", service, re.M)
    # below HomeHelper on the CPU: the processes' nice, and the unit's cgroup as a nice-10 process weighs
    assert re.search(r"^Nice=10$", service, re.M) and re.search(r"^CPUWeight=11$", service, re.M)


def test_generated_units_verify(systemd_user, state_root: Path) -> None:
    config = make_config(state_root, redis_url="redis://127.0.0.1:6379/0")
    odd = write_app(config.apps_dir, "odd", "pass\n", env={"GREETING": 'say "100%" $HOME \\ ok'},
                    resources={"memory_mb": 64, "cpu_percent": 150, "tasks": 8})
    plain = write_app(config.apps_dir, "plain", "pass\n")
    for manifest in (odd, plain):
        path = state_root / f"hh-{manifest.id}.service"
        path.write_text(render_unit(app_spec(manifest, config, 8100, Path(sys.executable))))
        out = subprocess.run(["systemd-analyze", "verify", "--user", str(path)], env=systemd_user.env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "Unknown key" not in out.stderr and "ignoring" not in out.stderr.lower(), out.stderr


async def test_sandbox_allows_only_data_and_log_dirs(systemd_backend, systemd_user, state_root: Path) -> None:
    config = make_config(state_root)
    manifest = write_app(config.apps_dir, "probe", SANDBOX_PROBE, env={"GREETING": 'say "100%" $HOME'})
    await systemd_backend.prepare(app_spec(manifest, config, 8100, Path(sys.executable)))
    await systemd_backend.start("probe")
    log = config.logs_dir("probe") / "app.log"
    await wait_until(lambda: log.exists() and "PROBE" in log.read_text())
    # each line timestamped as it was written (stamp.py): the probe's report follows the stamp
    line = next(x.split(" ", 1)[1] for x in log.read_text().splitlines() if stamp_of(x) and " PROBE" in x)
    assert f"{config.data_dir('probe')}=rw" in line and f"{config.logs_dir('probe')}=rw" in line
    assert f"{manifest.path}=ro" in line and "/etc=ro" in line
    # A private /tmp: empty, though the host's is not (but for HomeHelper's own packages when run from there).
    own = sorted({p.relative_to("/tmp").parts[0] for p in OWN_PATHS if Path("/tmp") in p.parents})
    assert line.endswith(" tmp=" + ",".join(own)) and "/var/tmp=rw" in line
    status = await systemd_backend.status("probe")
    env = (await trio.Path(f"/proc/{status.pid}/environ").read_bytes()).decode().split("\0")
    assert 'GREETING=say "100%" $HOME' in env  # specifiers and quotes reach the app unchanged
    assert status.cgroup is not None and await trio.Path(status.cgroup).is_dir()
    proc = await trio.run_process(["systemd-analyze", "security", "--user", systemd_backend.unit("probe")],
                                  env=systemd_user.env, capture_stdout=True, capture_stderr=True, check=False)
    security = proc.stdout.decode()
    m = re.search(r"Overall exposure level for \S+: ([\d.]+)", security)
    assert m is not None, security[-500:]
    assert float(m.group(1)) <= MAX_EXPOSURE, security
    await systemd_backend.stop("probe")
