"""Fixtures of the monitor's tests: a Raspberry Pi 5's file tree (see pi5_tree.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .pi5_tree import build_tree


@pytest.fixture
def pi5_root(tmp_path: Path) -> Path:
    return build_tree(tmp_path / "pi5")
