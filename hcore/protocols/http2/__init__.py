"""HTTP/2 (RFC 9113) on h2: sans-IO client and server protocols and their factories.

:class:`HTTP2ClientFactory` and :class:`HTTP2ServerFactory` (ALPN ``"h2"``)
make an :class:`H2ClientProtocol` or :class:`H2ServerProtocol` per
connection.  Without ALPN (plain TCP) both speak h2c with prior knowledge:
the client sends the connection preface at once and the server expects it.

What the protocols guarantee, beyond h2's RFC 9113 state machines:

- Flow control both ways.  ``submit_data`` beyond the peer's windows is held
  (``pending_data_size``) and sent as WINDOW_UPDATEs arrive, in frames no
  larger than the peer's SETTINGS_MAX_FRAME_SIZE, then
  :class:`~hcore.events.SendBufferDrained`.  Received data is acknowledged
  only when the application takes its
  :class:`~hcore.events.DataReceived`, so untaken data per stream never
  exceeds the receive window (64 KiB by default; 1 MiB per connection).
- Graceful close: ``submit_close`` sends GOAWAY with the highest stream
  processed and lets open streams finish; a received GOAWAY reports this
  side's streams the peer will not process.
- Limits with safe defaults, as factory keywords: receive windows, header
  list size (over it: stream reset; over twice it: GOAWAY
  ENHANCE_YOUR_CALM), concurrent streams (extra ones refused with
  REFUSED_STREAM), and a clock-free rapid-reset guard (GOAWAY
  ENHANCE_YOUR_CALM once the client abandons more than 100 of the last
  200 streams it opened).
- A peer's errors never raise: connection errors queue GOAWAY with the
  right code and emit :class:`~hcore.events.ConnectionTerminated`; stream
  errors (malformed messages, RFC 9113 §8.1.1) reset just the stream and
  emit :class:`~hcore.events.StreamResetSent`.  An invalid content-length
  is treated as a connection error, as h2 does (RFC 9113 §5.4.1 allows it).
"""

from hcore.protocols.http2._client import H2ClientProtocol as H2ClientProtocol
from hcore.protocols.http2._factories import HTTP2ClientFactory as HTTP2ClientFactory
from hcore.protocols.http2._factories import HTTP2ServerFactory as HTTP2ServerFactory
from hcore.protocols.http2._protocol import H2Protocol as H2Protocol
from hcore.protocols.http2._server import H2ServerProtocol as H2ServerProtocol

__all__ = (
    "H2ClientProtocol",
    "H2Protocol",
    "H2ServerProtocol",
    "HTTP2ClientFactory",
    "HTTP2ServerFactory",
)
