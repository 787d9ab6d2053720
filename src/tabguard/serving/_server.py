"""Running the scoring app under uvicorn with several worker processes.

``uvicorn.run(..., workers=N)`` binds the shared listening socket itself with
``socket.socket(family)``, i.e. protocol number 0. Accepted connections inherit that number,
and asyncio turns Nagle's algorithm off (``TCP_NODELAY``) only on sockets whose ``proto`` is
``IPPROTO_TCP``; so every keep-alive response of a multi-worker uvicorn waits for the client's
delayed ACK, about 40 ms on Linux (uvicorn issue #3149). One worker is not affected: there
asyncio's ``create_server`` makes the socket. gunicorn sets ``TCP_NODELAY`` on its listener.

:func:`run_workers` is ``uvicorn.run`` for N workers with that fixed: the listener is
created by uvicorn as usual (same address handling, log line and start-up errors), then
``TCP_NODELAY`` is set on it (Linux copies it to accepted sockets) and it is handed to the
workers as an ``IPPROTO_TCP`` socket (so asyncio sets it on each connection too, on any OS).
Measured in docs/benchmarks.md: 2 workers went from 163 to 1,088 req/s on a bare endpoint.
"""

from __future__ import annotations

import inspect
import socket
from typing import Any

import uvicorn

_INET = (socket.AF_INET, socket.AF_INET6)


def tcp_listener(sock: socket.socket) -> socket.socket:
    """Return ``sock`` as an ``IPPROTO_TCP`` socket with ``TCP_NODELAY`` (other families as is).

    The returned socket owns the same file descriptor (``sock`` is detached) and is
    inheritable, as uvicorn's worker processes need.
    """
    if sock.family not in _INET or sock.type != socket.SOCK_STREAM:
        return sock
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    tcp = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
    tcp.set_inheritable(True)
    return tcp


class NoDelayConfig(uvicorn.Config):
    """A ``uvicorn.Config`` whose listening socket gives every connection ``TCP_NODELAY``."""

    def bind_socket(self) -> socket.socket:
        """Bind as uvicorn does, then make the socket a ``TCP_NODELAY`` TCP listener."""
        return tcp_listener(super().bind_socket())


def run_workers(app: str, *, workers: int, **options: Any) -> None:
    """Serve ``app`` (an import string) with ``workers`` processes, like ``uvicorn.run``.

    Parameters
    ----------
    app : str
        ``"module:attribute"`` of the app (or, with ``factory=True``, of a function
        returning it); each worker process imports it.
    workers : int
        Number of worker processes (2 or more; one worker needs no supervisor).
    **options
        Any other ``uvicorn.Config`` option (``host``, ``port``, ``factory``, ``log_config``...).
    """
    from uvicorn.supervisors import Multiprocess

    config = NoDelayConfig(app, workers=workers, **options)
    sock = config.bind_socket()
    kwargs: dict[str, Any] = {}
    if "target" in inspect.signature(Multiprocess).parameters:  # older uvicorn releases
        kwargs["target"] = uvicorn.Server(config).run
    try:
        Multiprocess(config, sockets=[sock], **kwargs).run()
    finally:
        sock.close()
