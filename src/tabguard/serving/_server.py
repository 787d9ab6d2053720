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

:class:`Supervisor` replaces a dead worker the way uvicorn does, with one difference: a new
worker gets ``startup_timeout`` seconds to load and compile the model before the health check
(a ping every half second, answered within ``timeout_worker_healthcheck``) may kill it.
uvicorn pings a worker from the moment it is spawned; under load a replacement that is still
importing cannot answer within 5 s, is killed, replaced, killed again, and the service runs on
fewer workers until the load stops. A worker that has not finished starting within
``startup_timeout`` is killed and replaced as before.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from tabguard.serving._http import (
    MAX_HEAD_BYTES,
    REQUEST_TIMEOUT,
    GuardedHttpProtocol,
    event_loop,
)

log = logging.getLogger("uvicorn.error")

#: Seconds a new worker may take to load the model before health checks apply.
STARTUP_TIMEOUT = 120.0

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


class ServeConfig(uvicorn.Config):
    """The ``uvicorn.Config`` of ``tabguard serve``: httptools on uvloop, with our limits.

    Parameters
    ----------
    app : str or ASGI app
    request_timeout : float
        Seconds a request (head and body) may take to arrive (``[server] request_timeout``).
    max_head_bytes : int
        Largest incomplete request line plus headers (``[server] max_head_bytes``).
    **options
        Any other ``uvicorn.Config`` option; ``http`` and ``loop`` default to
        :class:`~tabguard.serving._http.GuardedHttpProtocol` and
        :func:`~tabguard.serving._http.event_loop`.
    """

    def __init__(
        self, app: Any, *, request_timeout: float = REQUEST_TIMEOUT,
        max_head_bytes: int = MAX_HEAD_BYTES, **options: Any,
    ) -> None:  # fmt: skip
        options.setdefault("http", GuardedHttpProtocol)
        options.setdefault("loop", event_loop())
        super().__init__(app, **options)
        # Read by GuardedHttpProtocol in each connection (and pickled to worker processes).
        self.request_timeout = request_timeout
        self.max_head_bytes = max_head_bytes


def describe(**options: Any) -> str:
    """One line naming the HTTP parser, event loop and request limits that ``options`` give.

    ``options`` are those of :class:`ServeConfig` (the defaults apply to what is missing).
    """
    http = options.get("http", GuardedHttpProtocol)
    loop = options.get("loop", event_loop())
    if http is not GuardedHttpProtocol:
        return f"HTTP: {getattr(http, '__name__', http)} on {loop}"
    timeout = options.get("request_timeout", REQUEST_TIMEOUT)
    head = options.get("max_head_bytes", MAX_HEAD_BYTES)
    text = (
        f"HTTP: httptools on {loop}; request head <= {head} bytes, "
        f"whole request within {timeout:g} s"
    )
    if loop == "asyncio":
        text += " (uvloop is not installed: the standard event loop, slower)"
    return text


def serve(app: Any, **options: Any) -> None:
    """Serve ``app`` from this process, like ``uvicorn.run`` with a :class:`ServeConfig`.

    Exits with uvicorn's start-up failure code when the app could not start (as
    ``uvicorn.run`` does).
    """
    config = ServeConfig(app, **options)
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(getattr(uvicorn.config, "STARTUP_FAILURE", 3))


class NoDelayConfig(ServeConfig):
    """A :class:`ServeConfig` whose listening socket gives every connection ``TCP_NODELAY``."""

    def bind_socket(self) -> socket.socket:
        """Bind as uvicorn does, then make the socket a ``TCP_NODELAY`` TCP listener."""
        return tcp_listener(super().bind_socket())


class Supervisor(Multiprocess):
    """uvicorn's multi-process supervisor with a start-up grace for new workers.

    Parameters
    ----------
    config : uvicorn.Config
    sockets : list of socket
    startup_timeout : float
        Seconds a new worker (at start and after a restart) may take to become ready; until
        then it is only checked for being alive, not pinged with the health-check timeout.
    clock : callable, optional
        Monotonic seconds (tests inject one).
    **kwargs
        Passed to ``Multiprocess`` (``target`` on older uvicorn releases).
    """

    def __init__(
        self, config: uvicorn.Config, sockets: list[socket.socket], *, startup_timeout: float,
        clock: Callable[[], float] = time.monotonic, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(config, sockets=sockets, **kwargs)
        self.startup_timeout = startup_timeout
        self.clock = clock
        self._starting: dict[int, float] = {}  # id(process) -> when it was started
        self._ready: set[int] = set()  # id(process) of workers that finished starting
        #: Workers replaced after dying, and replaced because they did not start in time.
        self.restarts = 0
        self.startup_kills = 0

    def keep_subprocess_alive(self) -> None:
        """Replace dead or hung workers; leave starting ones alone until ready or too slow."""
        if self.should_exit.is_set():
            return
        now = self.clock()
        for idx, process in enumerate(self.processes):
            key = id(process)
            if key not in self._ready:
                started = self._starting.setdefault(key, now)
                alive = process.process.is_alive()
                if alive and _reported_ready(process, 0.05):
                    self._ready.add(key)
                    self._starting.pop(key, None)
                    continue
                if alive and now - started < self.startup_timeout:
                    continue  # still loading the model: no health-check kill
                if alive:
                    self.startup_kills += 1
                    log.error(
                        "Child process [%s] not ready after %.0f s; replacing it",
                        process.pid,
                        self.startup_timeout,
                    )
            elif process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            self._replace(idx, process)

    def _replace(self, idx: int, process: Any) -> None:
        self._ready.discard(id(process))
        self._starting.pop(id(process), None)
        process.kill()
        process.join()
        failure = getattr(uvicorn.config, "STARTUP_FAILURE", None)
        if failure is not None and process.exitcode == failure:
            # The app itself cannot start (bad model, bad settings): every restart would fail.
            log.error(
                "Child process [%s] failed to start, stopping the parent process.", process.pid
            )
            self.should_exit.set()
            return
        if self.should_exit.is_set():
            return
        log.info("Child process [%s] died", process.pid)
        self.restarts += 1
        replacement = _new_process(process, self.config, self.sockets)
        replacement.start()
        self.processes[idx] = replacement
        self._starting[id(replacement)] = self.clock()


def _reported_ready(process: Any, timeout: float) -> bool:
    """Whether the worker has said it finished starting (``False`` while it has not)."""
    is_ready = getattr(process, "is_ready", None)
    if is_ready is None:  # uvicorn releases without a readiness answer: a pong will do
        return bool(process.ping(timeout)) if timeout > 0 else False
    return bool(is_ready(timeout=timeout)) if timeout > 0 else False


def _new_process(old: Any, config: uvicorn.Config, sockets: list[socket.socket]) -> Any:
    target = getattr(old, "real_target", None)  # older uvicorn: Process(config, target, sockets)
    if target is not None:
        return type(old)(config, target=target, sockets=sockets)
    return type(old)(config, sockets)


def run_workers(
    app: str, *, workers: int, startup_timeout: float = STARTUP_TIMEOUT, **options: Any
) -> None:
    """Serve ``app`` (an import string) with ``workers`` processes, like ``uvicorn.run``.

    Parameters
    ----------
    app : str
        ``"module:attribute"`` of the app (or, with ``factory=True``, of a function
        returning it); each worker process imports it.
    workers : int
        Number of worker processes (2 or more; one worker needs no supervisor).
    startup_timeout : float
        Seconds a new worker may take to become ready before it is replaced
        (:class:`Supervisor`).
    **options
        Any other :class:`ServeConfig` option (``host``, ``port``, ``factory``,
        ``log_config``, ``request_timeout``...).
    """
    config = NoDelayConfig(app, workers=workers, **options)
    sock = config.bind_socket()
    kwargs: dict[str, Any] = {}
    if "target" in inspect.signature(Multiprocess).parameters:  # older uvicorn releases
        kwargs["target"] = uvicorn.Server(config).run
    try:
        Supervisor(config, [sock], startup_timeout=startup_timeout, **kwargs).run()
    finally:
        sock.close()
