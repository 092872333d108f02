"""What every test process shares.

pynetdicom's AssociationSocket closes its socket only when `shutdown()` succeeds first; when
the peer has already closed its end, shutdown raises ENOTCONN and the socket is left to the
garbage collector, which reports it (ResourceWarning, an error under this suite's filters) in
whatever test it happens to run in. In this process pynetdicom is mostly the modality the
tests play (the listener under test runs in processes of its own), so its sockets are closed
here whatever shutdown says.
"""

from __future__ import annotations

import socket

from pynetdicom import transport


def _shutdown_and_close(self: transport.AssociationSocket) -> None:
    sock = self.socket
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # the peer went first
    finally:
        sock.close()


transport.AssociationSocket._shutdown_socket = _shutdown_and_close  # type: ignore[method-assign]
