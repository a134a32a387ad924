"""`homehelper new`: each type's output passes `homehelper validate` and runs: the service in serve's real
tree on both backends (healthy, its page served), the job once on the process backend, the Streamlit
app in Streamlit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from homehelper import cli
from homehelper.backends import ProcessBackend
from homehelper.config import Config
from homehelper.messages import AppStateChanged, GetApp, JobFailed, JobFinished, RunJob, StartApp, StopApp
from homehelper.scaffold import TYPES
from tests.backends.apps import make_config
from tests.fixtures.common import REPO
from tests.fixtures.systemd import _stop_processes
from tests.fixtures.tree import open_tree


def test_new_writes_a_valid_app_of_each_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    apps = tmp_path / "apps"
    for kind in TYPES:
        assert cli.main(["new", f"my-{kind}", "--type", kind, "--dir", str(apps)]) == 0
        assert "it is valid" in capsys.readouterr().out
        assert cli.main(["validate", str(apps / f"my-{kind}")]) == 0
        assert f"valid {kind} app 'my-{kind}'" in capsys.readouterr().out
        manifest = json.loads((apps / f"my-{kind}" / "homehelper.json").read_text())
        assert manifest["type"] == kind and manifest["options"]["api_key"]["type"] == "password"
        entry = apps / f"my-{kind}" / manifest["entry"]
        assert "from homehelper import sdk" in entry.read_text()
        compile(entry.read_text(), str(entry), "exec")
    assert sorted(p.name for p in (apps / "my-service").iterdir()) == ["homehelper.json", "main.py",
                                                                        "requirements.txt"]


def test_new_refuses_bad_ids_and_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    apps = tmp_path / "apps"
    assert cli.main(["new", "lamp", "--dir", str(apps)]) == 0
    (apps / "lamp" / "main.py").write_text("# mine\n")
    assert cli.main(["new", "lamp", "--type", "job", "--dir", str(apps)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (apps / "lamp" / "main.py").read_text() == "# mine\n"
    for bad in ("Lamp", "../lamp", "a" * 41, "lamp!", "lamp/x", ""):
        assert cli.main(["new", bad, "--dir", str(apps)]) == 2
        assert "is not an app id" in capsys.readouterr().err
    assert sorted(p.name for p in apps.iterdir()) == ["lamp"]
    with pytest.raises(SystemExit):
        cli.main(["new", "other", "--type", "daemon", "--dir", str(apps)])


def test_without_dir_the_app_goes_into_the_roots_apps_folder(state_root: Path) -> None:
    assert cli.main(["new", "lamp", "--root", str(state_root)]) == 0
    config = make_config(state_root)
    assert (config.apps_dir / "lamp" / "homehelper.json").is_file()


@pytest.fixture
def config(state_root: Path) -> Iterator[Config]:
    config = make_config(state_root, backend="process")
    yield config
    _stop_processes(ProcessBackend(config.run_dir / "procs"))


async def test_a_new_service_runs_healthy_and_serves_its_page(any_backend: Any, config: Config) -> None:
    assert cli.main(["new", "new-service", "--type", "service", "--dir", str(config.apps_dir)]) == 0
    async with open_tree(config, backend=any_backend, sensors=False) as (rt, rec):
        service = rt.apps.ref("new-service")
        await service.ask(StartApp("new-service"), timeout=120)
        await rec.wait(AppStateChanged, "new-service", state="running", timeout=120)
        snap: dict[str, Any] = await service.ask(GetApp("new-service"), timeout=10)
        assert snap["healthy"] is True
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{snap['port']}", trust_env=False) as client:
            health = (await client.get("/health")).json()
            assert health["status"] == "ok" and health["app"] == "new-service"
            page = (await client.get("/ui"))
            assert page.status_code == 200 and "<h1>New service</h1>" in page.text and "Hello #" in page.text
        # it wrote to its data folder (under systemd: the one folder its sandbox may write)
        assert (config.data_dir("new-service") / "last.txt").read_text().startswith("Hello #")
        await service.ask(StopApp("new-service"), timeout=30)


async def test_a_new_job_runs_once_on_the_process_backend(config: Config) -> None:
    assert cli.main(["new", "new-job", "--type", "job", "--dir", str(config.apps_dir)]) == 0
    async with open_tree(config, backend=ProcessBackend(config.run_dir / "procs"), sensors=False) as (rt, rec):
        job = rt.apps.ref("new-job")
        await job.ask(RunJob("new-job"), timeout=120)
        ended = (await rec.wait(lambda e: isinstance(e, (JobFinished, JobFailed)), "new-job", timeout=120))[0]
        assert isinstance(ended, JobFinished), ended
        runs = (config.data_dir("new-job") / "runs.log").read_text().splitlines()
        assert len(runs) == 1 and runs[0].endswith(" Hello")  # the option's default reached the job


def test_the_manifests_in_first_app_md_are_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (REPO / "docs" / "first-app.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```json\n")[1:]]
    assert len(blocks) == 2
    for block in blocks:
        manifest = json.loads(block)
        folder = tmp_path / manifest["id"]
        folder.mkdir()
        (folder / "homehelper.json").write_text(block)
        (folder / manifest.get("entry", "main.py")).write_text("print('hi')\n")
        assert cli.main(["validate", str(folder)]) == 0, capsys.readouterr().err
    # the tutorial's manifest is what `homehelper new greeter` writes, less the fields it leaves out
    assert cli.main(["new", "greeter", "--dir", str(tmp_path / "apps")]) == 0
    made = json.loads((tmp_path / "apps" / "greeter" / "homehelper.json").read_text())
    shown = json.loads(blocks[0])
    assert {k: made[k] for k in shown} == shown


def test_a_new_streamlit_app_runs_in_streamlit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    assert cli.main(["new", "notes", "--type", "streamlit", "--dir", str(tmp_path / "apps")]) == 0
    options = tmp_path / "options.json"
    options.write_text(json.dumps({"greeting": "Good morning"}))  # as HomeHelper writes the user's values
    for name, value in {"HH_APP_ID": "notes", "HH_DATA_DIR": str(tmp_path / "data"),
                        "HH_OPTIONS_FILE": str(options)}.items():
        monkeypatch.setenv(name, value)
    for name in ("HH_REDIS_URL", "CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    app = AppTest.from_file(str(tmp_path / "apps" / "notes" / "app.py"), default_timeout=60).run()
    assert not app.exception
    assert app.title[0].value == "Notes" and "Good morning!" in app.markdown[0].value
    app.text_area[0].input("buy milk")
    app.button[0].click().run()
    assert not app.exception and app.success[0].value == "Saved"
    assert (tmp_path / "data" / "notes.txt").read_text() == "buy milk"
