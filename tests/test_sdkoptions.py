"""homehelper.sdk.options() and secret(name), as an app calls them (sdkoptions.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from homehelper import sdk


def test_run_by_hand_an_app_gets_no_options_and_no_secrets() -> None:
    assert sdk.options({}) == {} and sdk.secret("api_key", {}) is None


def test_options_and_secrets_come_from_the_files_homehelper_names(tmp_path: Path) -> None:
    (tmp_path / "options.json").write_text(json.dumps({"interval": 9}))
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "api_key").write_text("k\n-123")  # as set: no stripping
    env = {"HH_OPTIONS_FILE": str(tmp_path / "options.json"), "CREDENTIALS_DIRECTORY": str(creds)}
    assert sdk.options(env) == {"interval": 9}
    assert sdk.secret("api_key", env) == "k\n-123" and sdk.secret("unset", env) is None
    for bad in ("../options.json", "API", "a/b", ""):
        with pytest.raises(ValueError):
            sdk.secret(bad, env)
    (tmp_path / "options.json").write_text("[1]")
    with pytest.raises(ValueError, match="JSON object"):
        sdk.options(env)
