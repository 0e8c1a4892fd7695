"""TLS for HTTP/3: verification, client certificates, session resumption."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import crypto

from hcore import ClientTLSConfig, Headers, LocalProtocolError, ServerTLSConfig
from hcore.events import ConnectionTerminated, DataReceived, Event, HeadersReceived
from hcore.protocols.http3 import (
    AioquicProtocol,
    HTTP3ClientFactory,
    HTTP3ServerFactory,
    SessionTicketStore,
)
from tests.hcore.quic_pairs import QUICPair, TLSFiles, drain, make_tls_files

BAD_CERTIFICATE = 0x100 + 42  # QUIC CRYPTO_ERROR + TLS alert (RFC 9001 §4.8)
CERTIFICATE_REQUIRED = 0x100 + 116


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(Path(tmp_path_factory.mktemp("tls")))


def request() -> Headers:
    return [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":authority", b"example.test"),
        (b":path", b"/"),
    ]


def connect(
    client_tls: ClientTLSConfig,
    server_tls: ServerTLSConfig,
    *,
    client_factory: HTTP3ClientFactory | None = None,
    server_factory: HTTP3ServerFactory | None = None,
    server_name: str = "example.test",
) -> QUICPair:
    return QUICPair(
        client_factory or HTTP3ClientFactory(),
        server_factory or HTTP3ServerFactory(),
        client_tls=client_tls,
        server_tls=server_tls,
        server_name=server_name,
    )


def exchange(pair: QUICPair) -> list[Event]:
    """Run one GET through a connection; return the client's events."""
    sid = pair.client.get_available_stream_id()
    pair.client.submit_headers(sid, request(), end_stream=True)
    pair.pump()
    events = drain(pair.server)
    assert isinstance(events[-1], HeadersReceived), events
    pair.server.submit_headers(sid, [(b":status", b"200")])
    pair.server.submit_data(sid, b"secret", end_stream=True)
    pair.pump()
    return drain(pair.client)


def refused(pair: QUICPair) -> tuple[ConnectionTerminated, ConnectionTerminated]:
    """Run a connection that should fail; return both sides' end."""
    pair.run_until(
        lambda: pair.client.get_timer() is None and pair.server.get_timer() is None,
        max_time=10,
    )
    client_events, server_events = drain(pair.client), drain(pair.server)
    assert not any(isinstance(e, HeadersReceived) for e in server_events)
    ends = (client_events[-1], server_events[-1])
    assert isinstance(ends[0], ConnectionTerminated), client_events
    assert isinstance(ends[1], ConnectionTerminated), server_events
    return ends[0], ends[1]


def test_verified_against_a_ca_file(tls: TLSFiles) -> None:
    events = exchange(connect(tls.client(), tls.server()))
    assert DataReceived(1, b"secret", end_stream=True) in events


def test_verified_against_ca_data(tls: TLSFiles) -> None:
    cadata = Path(tls.ca_file).read_text()
    events = exchange(connect(ClientTLSConfig(cadata=cadata), tls.server()))
    assert DataReceived(1, b"secret", end_stream=True) in events


def test_verified_against_a_ca_directory(tls: TLSFiles, tmp_path: Path) -> None:
    # OpenSSL finds CAs in a directory by the hash of their subject name.
    pem = Path(tls.ca_file).read_bytes()
    ca = crypto.X509.from_cryptography(x509.load_pem_x509_certificate(pem))
    (tmp_path / f"{ca.subject_name_hash():08x}.0").write_bytes(pem)
    events = exchange(connect(ClientTLSConfig(capath=str(tmp_path)), tls.server()))
    assert DataReceived(1, b"secret", end_stream=True) in events


def test_ip_address_as_server_name(tls: TLSFiles) -> None:
    pair = connect(tls.client(), tls.server(), server_name="127.0.0.1")
    assert DataReceived(1, b"secret", end_stream=True) in exchange(pair)


def test_unknown_ca_fails_with_a_tls_alert(tls: TLSFiles) -> None:
    pair = connect(ClientTLSConfig(cafile=tls.other_ca_file), tls.server())
    client_end, server_end = refused(pair)
    assert client_end.error_code == BAD_CERTIFICATE
    assert client_end.message
    assert server_end.error_code == BAD_CERTIFICATE


def test_wrong_server_name_fails_with_a_tls_alert(tls: TLSFiles) -> None:
    pair = connect(tls.client(), tls.server(), server_name="other.test")
    client_end, _ = refused(pair)
    assert client_end.error_code == BAD_CERTIFICATE
    assert "other.test" in (client_end.message or "")


def test_without_a_ca_the_system_store_is_used(tls: TLSFiles) -> None:
    # The test CA is in no system store.
    client_end, _ = refused(connect(ClientTLSConfig(), tls.server()))
    assert client_end.error_code == BAD_CERTIFICATE


def test_insecure_mode_skips_verification(tls: TLSFiles) -> None:
    pair = connect(
        ClientTLSConfig(insecure=True), tls.server(), server_name="other.test"
    )
    assert DataReceived(1, b"secret", end_stream=True) in exchange(pair)


def test_client_certificate_accepted(tls: TLSFiles) -> None:
    # The client's PEM file holds its key first, then its certificate.
    client_tls = tls.client(certfile=tls.client_combined)
    server_tls = tls.server(require_client_certificate=True, cafile=tls.ca_file)
    server_factory = HTTP3ServerFactory()
    pair = connect(client_tls, server_tls, server_factory=server_factory)
    assert DataReceived(1, b"secret", end_stream=True) in exchange(pair)
    # A session resumed without a certificate would skip the check, so a
    # server that requires one issues no tickets.
    assert len(server_factory.session_ticket_store) == 0


def test_client_certificate_checked_against_ca_data(tls: TLSFiles) -> None:
    client_tls = tls.client(certfile=tls.client_combined)
    server_tls = tls.server(
        require_client_certificate=True, cadata=Path(tls.ca_file).read_text()
    )
    assert DataReceived(1, b"secret", end_stream=True) in exchange(
        connect(client_tls, server_tls)
    )


def test_missing_client_certificate_is_refused(tls: TLSFiles) -> None:
    server_tls = tls.server(require_client_certificate=True, cafile=tls.ca_file)
    pair = connect(tls.client(), server_tls)
    pair.client.submit_headers(1, request(), end_stream=True)
    client_end, server_end = refused(pair)
    assert client_end.error_code == CERTIFICATE_REQUIRED
    assert server_end.error_code == CERTIFICATE_REQUIRED


def test_client_certificate_from_another_ca_is_refused(tls: TLSFiles) -> None:
    client_tls = tls.client(certfile=tls.client_combined)
    server_tls = tls.server(require_client_certificate=True, cafile=tls.other_ca_file)
    client_end, server_end = refused(connect(client_tls, server_tls))
    assert client_end.error_code == BAD_CERTIFICATE
    assert "client certificate refused" in (server_end.message or "")


def test_client_certificate_against_the_system_store(tls: TLSFiles) -> None:
    client_tls = tls.client(certfile=tls.client_combined)
    server_tls = tls.server(require_client_certificate=True)
    client_end, _ = refused(connect(client_tls, server_tls))
    assert client_end.error_code == BAD_CERTIFICATE


def test_session_resumption_and_early_data(tls: TLSFiles) -> None:
    client_factory = HTTP3ClientFactory()
    server_factory = HTTP3ServerFactory()
    first = connect(
        tls.client(),
        tls.server(),
        client_factory=client_factory,
        server_factory=server_factory,
    )
    exchange(first)
    for protocol in (first.client, first.server):
        assert isinstance(protocol, AioquicProtocol)
        assert not protocol.session_resumed
    assert "example.test" in client_factory.session_ticket_store
    assert len(server_factory.session_ticket_store) == 1

    second = connect(
        tls.client(),
        tls.server(),
        client_factory=client_factory,
        server_factory=server_factory,
    )
    # Tickets are used once.
    assert "example.test" not in client_factory.session_ticket_store
    # Sent before the handshake completes, the request rides in 0-RTT packets.
    second.client.submit_headers(1, request(), end_stream=True)
    second.collect()
    second.advance(second.now + second.delay)
    early = drain(second.server)
    assert early and isinstance(early[0], HeadersReceived)
    second.pump()
    for protocol in (second.client, second.server):
        assert isinstance(protocol, AioquicProtocol)
        assert protocol.session_resumed
        assert protocol.early_data_accepted
    # The server took the old ticket and issued a fresh one for the next time.
    assert "example.test" in client_factory.session_ticket_store
    assert len(server_factory.session_ticket_store) == 1


def test_no_resumption_with_a_server_that_does_not_know_the_ticket(
    tls: TLSFiles,
) -> None:
    shared = SessionTicketStore()
    exchange(
        connect(
            tls.client(),
            tls.server(),
            client_factory=HTTP3ClientFactory(session_ticket_store=shared),
        )
    )
    assert "example.test" in shared
    pair = connect(
        tls.client(),
        tls.server(),
        client_factory=HTTP3ClientFactory(session_ticket_store=shared),
    )
    pair.client.submit_headers(1, request(), end_stream=True)  # early data, refused
    pair.pump()
    assert isinstance(drain(pair.server)[0], HeadersReceived)  # sent again in 1-RTT
    assert isinstance(pair.client, AioquicProtocol)
    assert not pair.client.session_resumed
    assert not pair.client.early_data_accepted


def test_ticket_store_keeps_a_bounded_number(tls: TLSFiles) -> None:
    with pytest.raises(ValueError):
        SessionTicketStore(max_tickets=0)
    store = SessionTicketStore(max_tickets=1)
    server_factory = HTTP3ServerFactory(session_ticket_store=store)
    for _ in range(3):
        exchange(connect(tls.client(), tls.server(), server_factory=server_factory))
    assert len(store) == 1
    store.clear()
    assert len(store) == 0


def test_encrypted_private_key(tls: TLSFiles, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(Path(tls.server_key).read_bytes(), None)
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"sesame"),
        )
    )
    for password in ("sesame", b"sesame"):
        server_tls = tls.server(keyfile=str(encrypted), keypassword=password)
        assert DataReceived(1, b"secret", end_stream=True) in exchange(
            connect(tls.client(), server_tls)
        )
    with pytest.raises(LocalProtocolError):
        HTTP3ServerFactory()(
            tls_config=tls.server(keyfile=str(encrypted), keypassword="no")
        )


def test_certificate_files_must_be_usable(tls: TLSFiles, tmp_path: Path) -> None:
    server = HTTP3ServerFactory()
    with pytest.raises(LocalProtocolError):
        server(tls_config=ServerTLSConfig())
    with pytest.raises(LocalProtocolError):
        server(tls_config=ServerTLSConfig(certfile=str(tmp_path / "missing.pem")))
    with pytest.raises(LocalProtocolError):
        server(tls_config=ServerTLSConfig(certfile=tls.server_cert))  # no key in it
    with pytest.raises(LocalProtocolError):
        server(tls_config=ServerTLSConfig(certfile=tls.ca_file, keyfile=tls.ca_file))
    with pytest.raises(LocalProtocolError):
        HTTP3ClientFactory()(
            remote_address=("192.0.2.1", 443),
            server_name="example.test",
            tls_config=ClientTLSConfig(certfile=str(tmp_path / "missing.pem")),
        )


def test_certificates_are_read_once_per_factory(tls: TLSFiles, tmp_path: Path) -> None:
    certfile = tmp_path / "cert.pem"
    certfile.write_bytes(Path(tls.server_cert).read_bytes())
    factory = HTTP3ServerFactory()
    config = ServerTLSConfig(certfile=str(certfile), keyfile=tls.server_key)
    factory(tls_config=config)
    certfile.unlink()
    factory(tls_config=config)  # from the cache
    with pytest.raises(LocalProtocolError):
        HTTP3ServerFactory()(tls_config=config)


def test_certificate_cache_keeps_a_few(tls: TLSFiles, tmp_path: Path) -> None:
    factory = HTTP3ServerFactory()
    configs = []
    for n in range(10):
        copy = tmp_path / f"cert{n}.pem"
        copy.write_bytes(Path(tls.server_cert).read_bytes())
        configs.append(ServerTLSConfig(certfile=str(copy), keyfile=tls.server_key))
        factory(tls_config=configs[-1])
    Path(configs[0].certfile or "").unlink()
    Path(configs[-1].certfile or "").unlink()
    factory(tls_config=configs[-1])  # still cached
    with pytest.raises(LocalProtocolError):
        factory(tls_config=configs[0])  # forgotten, and the file is gone
