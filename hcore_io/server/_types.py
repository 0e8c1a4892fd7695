"""The ASGI 3 callable's types, as the server sees them.

Messages and scopes are plain mutable mappings; the server checks the
fields it reads, so an application typed with ``Any`` values (as the common
frameworks are) fits these types.

The aliases are made with :mod:`typing`'s generics rather than
:mod:`collections.abc`'s because only those can carry a docstring.
"""

from __future__ import annotations

import typing
from typing import TypeAlias

__all__ = ("ASGIApp", "Message", "Receive", "Scope", "Send")

Scope: TypeAlias = typing.MutableMapping[str, object]
Scope.__doc__ = "An ASGI connection scope (``http`` or ``lifespan``)."

Message: TypeAlias = typing.MutableMapping[str, object]
Message.__doc__ = "An ASGI event, received or sent."

Receive: TypeAlias = typing.Callable[[], typing.Awaitable[Message]]
Receive.__doc__ = "What the application awaits for the next event."

Send: TypeAlias = typing.Callable[[Message], typing.Awaitable[None]]
Send.__doc__ = "What the application awaits to send an event."

ASGIApp: TypeAlias = typing.Callable[[Scope, Receive, Send], typing.Awaitable[None]]
ASGIApp.__doc__ = "An ASGI 3 application: ``await app(scope, receive, send)``."
