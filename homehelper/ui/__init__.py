"""Streamlit apps on demand: what they run as (launcher) and the UI manager (caps, eviction)."""

from .launcher import StartFailed, streamlit_spec, ui_prefix
from .manager import UIManager

__all__ = ["StartFailed", "UIManager", "streamlit_spec", "ui_prefix"]
