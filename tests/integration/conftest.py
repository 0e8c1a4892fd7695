"""Fixtures of the integration tests: event loops, networking backends, certificates.

The same as tests/hcore_io's (this directory is not below it), so that
every test against a real peer also runs on asyncio and on Trio.
"""

from __future__ import annotations

from tests.hcore_io.conftest import anyio_backend as anyio_backend
from tests.hcore_io.conftest import client_tls_config as client_tls_config
from tests.hcore_io.conftest import networking as networking
from tests.hcore_io.conftest import networking_backend as networking_backend
from tests.hcore_io.conftest import networking_class as networking_class
from tests.hcore_io.conftest import server_tls_config as server_tls_config
from tests.hcore_io.conftest import tls_ca as tls_ca
from tests.hcore_io.conftest import tls_dir as tls_dir
