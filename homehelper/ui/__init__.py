"""Streamlit apps on demand: the process launcher, the state file, the UI manager."""

from .launcher import StartFailed, StreamlitProcess, ui_prefix
from .manager import UIManager

__all__ = ["StartFailed", "StreamlitProcess", "UIManager", "ui_prefix"]
