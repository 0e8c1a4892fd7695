"""Events emitted by every :mod:`hcore` protocol, whatever the HTTP version."""

from hcore.events._events import ConnectionTerminated as ConnectionTerminated
from hcore.events._events import DataReceived as DataReceived
from hcore.events._events import Event as Event
from hcore.events._events import GoawayReceived as GoawayReceived
from hcore.events._events import HeadersReceived as HeadersReceived
from hcore.events._events import (
    InformationalResponseReceived as InformationalResponseReceived,
)
from hcore.events._events import SendBufferDrained as SendBufferDrained
from hcore.events._events import StreamResetReceived as StreamResetReceived
from hcore.events._events import StreamResetSent as StreamResetSent
from hcore.events._events import TrailersReceived as TrailersReceived

__all__ = (
    "ConnectionTerminated",
    "DataReceived",
    "Event",
    "GoawayReceived",
    "HeadersReceived",
    "InformationalResponseReceived",
    "SendBufferDrained",
    "StreamResetReceived",
    "StreamResetSent",
    "TrailersReceived",
)
