"""What a Streamlit app runs as, through the backend, with real streamlit processes: flags,
environment, log, taken ports, failed starts."""

from __future__ import annotations

import socket

import pytest
import trio

from homehelper.actors import ChildSpec
from homehelper.actors import streamlit_spec as launcher
from homehelper.actors.ports import PortAllocator
from homehelper.actors.streamlit import StreamlitApp
from homehelper.actors.streamlit_spec import PortTaken
from homehelper.backends import ProcessBackend
from homehelper.errors import BackendError
from homehelper.manifest import load_manifest
from homehelper.messages import GetApp, GetSlots, OpenUI
from tests.fixtures.streamlit import make_app, streamlit_config, streamlit_pids


def environ_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        pairs = [item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item]
    return {k.decode(): v.decode() for k, v in pairs}


def cmdline_of(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [a.decode() for a in f.read().split(b"\0") if a]


async def test_streamlit_runs_with_the_issue_flags_and_hh_environment(make_tree, state_root, monkeypatch):
    monkeypatch.setenv("HOMEHELPER_PASSWORD", "hunter2-secret")  # HomeHelper's own: never an app's
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-apps")
    async with make_tree() as tree:
        app = tree.add_app("envapp")
        await app.ask(OpenUI("envapp"), timeout=30)
        snap = await app.ask(GetApp("envapp"))
        argv = cmdline_of(snap["pid"])
        flags = dict(zip(argv[5::2], argv[6::2], strict=True))
        assert argv[1:4] == ["-m", "streamlit", "run"] and argv[4].endswith("envapp/app.py")
        assert flags == {"--server.headless": "true", "--server.address": "127.0.0.1",
                         "--server.port": str(snap["port"]), "--server.baseUrlPath": "/apps/envapp/ui",
                         "--server.fileWatcherType": "none", "--server.runOnSave": "false",
                         "--browser.gatherUsageStats": "false"}
        env = environ_of(snap["pid"])
        assert env["HH_APP_ID"] == "envapp" and env["HH_PORT"] == str(snap["port"])
        assert env["HH_HOST"] == "127.0.0.1" and env["HH_NODE_ID"] == "main"
        assert env["HH_DATA_DIR"] == str(state_root / "data" / "envapp")
        assert env["HH_LOG_DIR"] == str(state_root / "logs" / "envapp")
        assert "HH_REDIS_URL" not in env  # no redis configured: the app must not guess one
        assert "hunter2-secret" not in str(env) and "AWS_SECRET_ACCESS_KEY" not in env
        assert (state_root / "data" / "envapp").is_dir()
        # Streamlit's own files (~/.streamlit) land in the app's data folder, the one it may write
        assert env["HOME"] == str(state_root / "data" / "envapp")
        assert env["XDG_CONFIG_HOME"].startswith(env["HOME"]) and env["XDG_CACHE_HOME"].startswith(env["HOME"])
        assert env["HH_UI_PREFIX"] == "/apps/envapp/ui" and env["STREAMLIT_CLIENT_TOOLBAR_MODE"] == "minimal"
        # its output is the app's log, which the dashboard's Logs button shows
        assert "Uvicorn server started" in (state_root / "logs" / "envapp" / "app.log").read_text()
        assert not (state_root / "logs" / "envapp" / "streamlit.log").exists()


async def test_a_taken_port_is_told_apart_from_other_failures(state_root):
    config = streamlit_config(state_root)
    manifest = load_manifest(make_app(config.apps_dir, "portapp"))
    backend = ProcessBackend(config.run_dir / "procs")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        spec = launcher.streamlit_spec(config, manifest, port)
        await backend.prepare(spec)
        await backend.start("portapp")
        status = await backend.status("portapp")
        exited = trio.Event()

        async def watch() -> None:
            await backend.wait_exit(status)
            exited.set()

        async def exit_status() -> int | None:
            return (await backend.status("portapp")).exit_status

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            with pytest.raises(PortTaken) as err:
                await launcher.wait_ready(port, launcher.ui_prefix("portapp"), spec.log_file, 0, 30, exited,
                                          exit_status)
        assert err.value.port == port
        assert not (await backend.status("portapp")).running


class FirstPortTaken(PortAllocator):
    """The allocator's bind check passed, then something else took the port before Streamlit bound it:
    a race that cannot be timed from outside, so the first answer is a port held by the test."""

    def __init__(self, held: int, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.held = held
        self.asked: list[tuple[int, ...]] = []

    def allocate(self, app_id: str, kind: str, avoid: set[int]) -> int:
        self.asked.append(tuple(sorted(avoid)))
        return self.held if not avoid else super().allocate(app_id, kind, avoid)


async def test_the_app_takes_another_port_when_streamlit_finds_its_port_taken(make_tree, state_root):
    async with make_tree() as tree:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            held = taken.getsockname()[1]
            ranges = {"service": tree.config.service_ports, "streamlit": tree.config.streamlit_ports}
            tree.ctx.ports = tree.root.start_child(ChildSpec("ports2", lambda: FirstPortTaken(
                held, ranges=ranges, state_file=None)))
            app = tree.add_app("retry")
            reply = await app.ask(OpenUI("retry"), timeout=60)
            assert reply["state"] == "running"
            port = (await app.ask(GetApp("retry")))["port"]
            assert port != held and 8520 <= port <= 8579
            assert len(streamlit_pids(str(state_root))) == 1
            assert [e.port for e in tree.events if e.kind == "app_started"] == [port]


async def test_a_start_that_fails_says_why_and_frees_its_slot(make_tree, state_root):
    async with make_tree() as tree:
        app = tree.add_app("broken")
        (tree.config.apps_dir / "broken" / "app.py").unlink()  # gone after the scan: streamlit refuses
        with pytest.raises(BackendError) as err:
            await app.ask(OpenUI("broken"), timeout=30)
        assert "exited with status" in err.value.message
        assert "does not exist" in err.value.detail["log_tail"]
        snap = await app.ask(GetApp("broken"))
        assert snap["state"] == "stopped" and "exited with status" in snap["last_error"]
        assert ("app_config_error", "") in tree.kinds("broken")
        assert await tree.slots.ask(GetSlots()) == {}
        assert streamlit_pids(str(state_root)) == []


async def test_an_app_with_requirements_runs_from_its_own_venv(make_tree, state_root):
    async with make_tree() as tree:
        folder = make_app(tree.config.apps_dir, "withreq")
        (folder / "requirements.txt").write_text("# nothing to fetch: the venv still gets built and layered\n")
        manifest = load_manifest(folder)
        assert manifest.requirements == "requirements.txt"
        app = tree.apps.start_child(ChildSpec("withreq", lambda: StreamlitApp(manifest, tree.ctx)))
        reply = await app.ask(OpenUI("withreq"), timeout=120)
        assert reply["state"] == "running"
        pid = (await app.ask(GetApp("withreq")))["pid"]
        assert cmdline_of(pid)[0] == str(state_root / "venvs" / "withreq" / "bin" / "python")
        states = [e.state for e in tree.events if e.kind == "app_state_changed"]
        assert states[:3] == ["installing", "stopped", "starting"] and states[-1] == "running"
        assert ("app_installed", "") in tree.kinds("withreq")
