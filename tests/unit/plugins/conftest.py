"""Unit tests of the collection's modules and module_utils: the network below urls is scripted."""

from __future__ import annotations

import pytest

from tests.unit.plugins.fake_http import FakeOpener


@pytest.fixture
def network(monkeypatch):
    """``network(*script)`` installs a FakeOpener under urls (see fake_http) and returns it."""

    def install(*script):
        return FakeOpener(*script).install(monkeypatch)

    return install
