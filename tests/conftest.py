"""Shared fixtures. The real-component fixtures live in tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.common",
    "tests.fixtures.redis",
    "tests.fixtures.browser",
    "tests.fixtures.systemd",
    "tests.fixtures.journal",
    "tests.fixtures.streamlit",
    "tests.fixtures.receiver",
]
