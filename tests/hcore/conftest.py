"""Fixtures of the sans-IO tests: the HTTP/1.1 implementations under test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from hcore.protocols import HTTPOverTCPFactory
from hcore.protocols.http1 import (
    HTTP1ClientFactory,
    HTTP1ServerFactory,
    HTTPToolsClientFactory,
    HTTPToolsServerFactory,
)
from tests.hcore import http1_helpers

#: A factory class (or callable) taking the HTTP/1.1 limits as keywords
#: (``max_header_size``, ``max_header_count``, ...).
HTTP1FactoryMaker = Callable[..., HTTPOverTCPFactory]

#: Every HTTP/1.1 implementation the strictness tests hold to the same
#: answers, by registry name: (client factory, server factory).
HTTP1_IMPLEMENTATIONS: dict[str, tuple[HTTP1FactoryMaker, HTTP1FactoryMaker]] = {
    "h11": (HTTP1ClientFactory, HTTP1ServerFactory),
    "httptools": (HTTPToolsClientFactory, HTTPToolsServerFactory),
}


@pytest.fixture(scope="module", params=sorted(HTTP1_IMPLEMENTATIONS))
def http1_helpers_implementation(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a whole module once per implementation, through the helpers.

    ``make_pair``, ``new_server``, ``new_client``, ``open_client`` and
    ``feed_server`` of :mod:`tests.hcore.http1_helpers` make clients and
    servers of the implementation under test; a module opts in with
    ``pytestmark = pytest.mark.usefixtures("http1_helpers_implementation")``.
    Module-scoped, so that hypothesis tests may use it.
    """
    name: str = request.param
    http1_helpers.CLIENT_FACTORY[0], http1_helpers.SERVER_FACTORY[0] = (
        HTTP1_IMPLEMENTATIONS[name]
    )
    yield name
    http1_helpers.CLIENT_FACTORY[0] = HTTP1ClientFactory
    http1_helpers.SERVER_FACTORY[0] = HTTP1ServerFactory


@pytest.fixture(params=sorted(HTTP1_IMPLEMENTATIONS))
def http1_implementation(request: pytest.FixtureRequest) -> str:
    """Run an HTTP/1.1 test once per implementation."""
    name: str = request.param
    return name


@pytest.fixture
def http1_server_factory(http1_implementation: str) -> HTTP1FactoryMaker:
    """The server factory class of the implementation under test."""
    return HTTP1_IMPLEMENTATIONS[http1_implementation][1]


@pytest.fixture
def http1_client_factory(http1_implementation: str) -> HTTP1FactoryMaker:
    """The client factory class of the implementation under test."""
    return HTTP1_IMPLEMENTATIONS[http1_implementation][0]
