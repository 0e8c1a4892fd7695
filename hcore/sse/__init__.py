"""Sans-IO Server-Sent Events: the ``text/event-stream`` format both ways.

:class:`EventStreamParser` reads a stream cut anywhere into
:class:`ServerSentEvent` s, as the HTML standard's "Parsing an event
stream" says; :class:`EventSourceState` keeps what a reconnecting client
needs (the last event ID, the server's retry delay); :func:`encode_event`
and :func:`encode_comment` write a stream for a server.
"""

from hcore.sse._encoder import encode_comment as encode_comment
from hcore.sse._encoder import encode_event as encode_event
from hcore.sse._parser import DEFAULT_MAX_EVENT_SIZE as DEFAULT_MAX_EVENT_SIZE
from hcore.sse._parser import DEFAULT_MAX_LINE_SIZE as DEFAULT_MAX_LINE_SIZE
from hcore.sse._parser import EventStreamError as EventStreamError
from hcore.sse._parser import EventStreamParser as EventStreamParser
from hcore.sse._parser import ServerSentEvent as ServerSentEvent
from hcore.sse._reconnect import DEFAULT_RETRY_DELAY as DEFAULT_RETRY_DELAY
from hcore.sse._reconnect import EventSourceState as EventSourceState

__all__ = (
    "DEFAULT_MAX_EVENT_SIZE",
    "DEFAULT_MAX_LINE_SIZE",
    "DEFAULT_RETRY_DELAY",
    "EventSourceState",
    "EventStreamError",
    "EventStreamParser",
    "ServerSentEvent",
    "encode_comment",
    "encode_event",
)
