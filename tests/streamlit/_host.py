"""A HomeHelper stand-in for the kill test: `python -m tests.streamlit._host <state root> <app id>`.

It runs the same tree as the tests, opens the app, prints `READY <pid>` and waits to be killed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import trio

from homehelper.messages import GetApp, OpenUI
from tests.fixtures.streamlit import tree_factory


async def main(root: Path, app_id: str) -> None:
    async with tree_factory(root)() as tree:
        app = tree.add_app(app_id)
        await app.ask(OpenUI(app_id), timeout=60)
        pid = (await app.ask(GetApp(app_id)))["pid"]
        print("READY", pid, flush=True)
        await trio.sleep_forever()


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]), sys.argv[2])
