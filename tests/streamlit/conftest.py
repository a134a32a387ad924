"""The Streamlit fixtures live in tests/fixtures/streamlit.py (tests/web/test_proxy.py uses them too)."""

from tests.fixtures.streamlit import make_tree  # noqa: F401
