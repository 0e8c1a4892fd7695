"""Fixtures shared by the I/O layer tests: loops, networking backends, certificates."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore_io.networking import EpollNetworking, SystemNetworking

from .server_helpers import Serve, serve_with

#: A socket networking backend's class: both take the same arguments.
SocketNetworkingClass = type[SystemNetworking] | type[EpollNetworking]
#: An instance of one: what the ``networking`` fixture gives.
SocketBackend = SystemNetworking | EpollNetworking


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every ``pytest.mark.anyio`` test on asyncio and on Trio."""
    backend: str = request.param
    return backend


@pytest.fixture(params=["system", "epoll"])
def networking_backend(request: pytest.FixtureRequest) -> str:
    """Run a socket test on every socket backend: AnyIO's and epoll's."""
    backend: str = request.param
    return backend


@pytest.fixture
def networking_class(networking_backend: str) -> SocketNetworkingClass:
    """The class of the ``networking_backend`` under test."""
    if networking_backend == "epoll":
        return EpollNetworking
    return SystemNetworking


@pytest.fixture
def networking(networking_class: SocketNetworkingClass) -> SocketBackend:
    """A fresh instance of the socket backend under test, with its defaults.

    Pass it as ``networking=`` to every opener, listener, pool, client and
    server a test builds, so that the test runs once per backend.
    """
    return networking_class()


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    """A throwaway certificate authority."""
    return trustme.CA()


@pytest.fixture
def tls_contexts(tls_ca: trustme.CA) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server's and a client's SSL context for ``localhost``, trusting each other."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls_ca.issue_cert("localhost").configure_cert(server)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls_ca.configure_trust(client)
    return server, client


@pytest.fixture(scope="session")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for the PEM files of the certificate fixtures."""
    return tmp_path_factory.mktemp("tls")


@pytest.fixture(scope="session")
def server_tls_config(tls_ca: trustme.CA, tls_dir: Path) -> ServerTLSConfig:
    """A server certificate for localhost, 127.0.0.1 and ::1, issued by ``tls_ca``."""
    cert = tls_ca.issue_cert("localhost", "127.0.0.1", "::1")
    path = tls_dir / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(path))
    return ServerTLSConfig(certfile=str(path))


@pytest.fixture(scope="session")
def client_tls_config(tls_ca: trustme.CA, tls_dir: Path) -> ClientTLSConfig:
    """A client configuration trusting ``tls_ca`` (and nothing else)."""
    path = tls_dir / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(path))
    return ClientTLSConfig(cafile=str(path))


@pytest.fixture(scope="session")
def client_cert_paths(tls_ca: trustme.CA, tls_dir: Path) -> tuple[str, str]:
    """A client certificate issued by ``tls_ca``: (certificate chain, key) files."""
    cert = tls_ca.issue_cert("client@example.com")
    cert_path = tls_dir / "client-cert.pem"
    key_path = tls_dir / "client-key.pem"
    for blob in cert.cert_chain_pems:
        blob.write_to_path(str(cert_path), append=True)
    cert.private_key_pem.write_to_path(str(key_path))
    return str(cert_path), str(key_path)


@pytest.fixture
def serve(
    server_tls_config: ServerTLSConfig,
    client_tls_config: ClientTLSConfig,
    networking: SocketBackend,
) -> Serve:
    """``serve(app, **options)``: an ASGIServer under test (``running``) with
    the test certificates and the socket backend under test."""
    return serve_with(server_tls_config, client_tls_config, networking)
