"""One request and response on HTTP/1.1, HTTP/2 and HTTP/3, entirely in memory.

Each client protocol talks to the matching server protocol with no sockets
and no event loop: this script moves the bytes (or datagrams) between them,
prints what crosses the wire, and prints the events each side emits.  The
application code -- ``request()`` and ``respond()`` -- is the same for every
version.

Run: ``python examples/protocol.py``
"""

from __future__ import annotations

import datetime
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hcore import ClientTLSConfig, ServerTLSConfig
from hcore.events import DataReceived, Event, HeadersReceived
from hcore.protocols import (
    HTTPOverQUICProtocol,
    HTTPOverTCPProtocol,
    HTTPProtocol,
    default_registry,
)

BODY = b"Hello, world!"


def request(client: HTTPProtocol) -> int:
    """Start a POST on the client; return its stream id."""
    stream_id = client.get_available_stream_id()
    client.submit_headers(
        stream_id,
        [
            (b":method", b"POST"),
            (b":scheme", b"https"),
            (b":authority", b"example.test"),
            (b":path", b"/echo"),
            (b"content-type", b"text/plain"),
            (b"content-length", str(len(BODY)).encode()),
        ],
    )
    client.submit_data(stream_id, BODY, end_stream=True)
    return stream_id


def respond(server: HTTPProtocol, event: Event) -> None:
    """Answer a request once its body is complete, echoing the body back."""
    if isinstance(event, DataReceived) and event.end_stream:
        server.submit_headers(
            event.stream_id,
            [
                (b":status", b"200"),
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(BODY)).encode()),
            ],
        )
        server.submit_data(event.stream_id, BODY, end_stream=True)


def show_wire(direction: str, data: bytes) -> None:
    shown = data if len(data) <= 72 else data[:72] + b"..."
    print(f"  {direction} {len(data):5d} bytes  {shown!r}")


def take_events(side: str, protocol: HTTPProtocol, server: bool) -> list[Event]:
    events = []
    while (event := protocol.next_event()) is not None:
        print(f"  {side} event: {event!r}")
        events.append(event)
        if server:
            respond(protocol, event)
    return events


def over_tcp(http_version: str) -> None:
    client = default_registry.tcp_client_factory(http_version)()
    server = default_registry.tcp_server_factory(http_version)()
    print(f"\n=== HTTP/{http_version} over an in-memory byte link ===")
    stream_id = request(client)
    done = False
    for _ in range(100):  # bounded: a handful of rounds is plenty
        moved = _move(client, server, "client -> server")
        take_events("server", server, server=True)
        moved += _move(server, client, "server -> client")
        for event in take_events("client", client, server=False):
            if isinstance(event, DataReceived) and event.stream_id == stream_id:
                done = done or event.end_stream
        if done and not moved:
            break
    assert done, "the exchange did not complete"


def _move(source: HTTPOverTCPProtocol, target: HTTPOverTCPProtocol, label: str) -> int:
    data = source.bytes_to_send()
    if data:
        show_wire(label, data)
        target.bytes_received(data)
    return len(data)


def over_quic(tls_dir: Path) -> None:
    cert, key, ca = _make_certificate(tls_dir)
    server_address, client_address = ("127.0.0.1", 4433), ("127.0.0.1", 50000)
    client = default_registry.quic_client_factory()(
        remote_address=server_address,
        server_name="example.test",
        tls_config=ClientTLSConfig(cafile=str(ca)),
    )
    server = default_registry.quic_server_factory()(
        tls_config=ServerTLSConfig(certfile=str(cert), keyfile=str(key))
    )
    print("\n=== HTTP/3 over in-memory datagrams (simulated clock) ===")
    now = 0.0
    client.clock(now)
    server.clock(now)
    stream_id = request(client)
    done = False
    for _ in range(200):  # bounded: the handshake and exchange take a few rounds
        moved = _move_datagrams(client, server, client_address, "client -> server")
        take_events("server", server, server=True)
        moved += _move_datagrams(server, client, server_address, "server -> client")
        for event in take_events("client", client, server=False):
            if isinstance(event, HeadersReceived | DataReceived):
                done = done or (event.stream_id == stream_id and event.end_stream)
        if done and not moved:
            break
        if not moved:
            # Nothing in flight: jump the clock to the earliest timer.
            timers = [t for t in (client.get_timer(), server.get_timer()) if t]
            now = max(now, min(timers)) if timers else now + 0.01
            client.clock(now)
            server.clock(now)
    assert done, "the exchange did not complete"


def _move_datagrams(
    source: HTTPOverQUICProtocol,
    target: HTTPOverQUICProtocol,
    source_address: tuple[str, int],
    label: str,
) -> int:
    moved = 0
    for datagram in source.datagrams_to_send():
        show_wire(label, datagram.data)
        # The receiver sees the datagram as coming from the sender's address.
        target.datagram_received(datagram._replace(address=source_address))
        moved += 1
    return moved


def _make_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """Write a throwaway CA and a certificate for example.test signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hcore example CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.test")])
        )
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("example.test")]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "cert.pem", directory / "key.pem", directory / "ca.pem"
    paths[0].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths[2].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return paths


def main() -> None:
    over_tcp("1.1")
    over_tcp("2")
    with tempfile.TemporaryDirectory() as tls_dir:
        over_quic(Path(tls_dir))


if __name__ == "__main__":
    main()
