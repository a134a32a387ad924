"""The web tests' live server (a real actor tree and Hypercorn), for the dashboard's backup panel."""

from tests.web.conftest import live

__all__ = ["live"]
