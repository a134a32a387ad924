"""docs/sdk.md is what `python -m homehelper.sdkdoc` prints from the SDK's docstrings."""

from __future__ import annotations

import subprocess
import sys

from homehelper import sdk, sdkdoc
from tests.fixtures.common import REPO


def test_the_committed_reference_matches_the_generator() -> None:
    out = subprocess.run([sys.executable, "-m", "homehelper.sdkdoc"], capture_output=True, text=True, check=True,
                         cwd=REPO).stdout
    assert out == (REPO / "docs" / "sdk.md").read_text(), \
        "docs/sdk.md is stale: run `python -m homehelper.sdkdoc > docs/sdk.md`"


def test_every_public_name_is_documented() -> None:
    page = sdkdoc.render()
    for name in sdk.__all__:
        obj = getattr(sdk, name)
        assert f"`{name}" in page or f"class `{name}" in page, name
        if callable(obj):
            assert obj.__doc__, f"sdk.{name} has no docstring"
    assert "## `publish(topic: str, data: Any = None) -> int`" in page
    assert "### `AppServer.route(path: str, methods: tuple[str, ...] = ('GET',))" in page
