"""The HTTP/1.1 protocol of ``tabguard serve``: uvicorn's httptools protocol with our limits.

``tabguard serve`` runs uvicorn with the httptools parser (llhttp, C) on the uvloop event loop
(libuv) instead of the pure-Python h11 parser on asyncio's loop: the server's CPU per guarded
request fell from 821 to 681 µs (docs/benchmarks.md). httptools is a core dependency; uvloop
is one wherever it publishes wheels (not on Windows), and without it the standard asyncio loop
runs the same protocol (:func:`event_loop`).

uvicorn's httptools protocol has two gaps that h11's does not share or that neither closes,
and an internet-facing service needs both closed whatever the proxy in front does:

* **Request head size.** h11 refuses a request line plus headers that is still incomplete
  after 16 KiB (``h11_max_incomplete_event_size``); uvicorn's httptools protocol has no
  limit, and httptools buffers a header value until its line ends, so one endless header
  grows the process without bound. :class:`GuardedHttpProtocol` answers **431** and closes the
  connection once an incomplete head exceeds ``max_head_bytes`` (16 KiB, as h11).
* **Slow requests** (slowloris). Neither of uvicorn's protocols times out a connection that
  sends nothing, or a request that trickles in a byte at a time: the keep-alive timeout only
  runs between a response and the next request, and any byte cancels it. Here a request must
  arrive whole (head and body) within ``request_timeout`` (10 s) of the connection or of its
  first byte: a connection that sent nothing is closed, an incomplete head gets **408**, an
  incomplete body closes the connection (the app sees the client disconnect).

Requests refused here never reach the app: they are not decision requests and leave no
prediction-log record (like uvicorn's own 400 for unparsable HTTP); uvicorn's logger warns.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: Largest request line plus headers accepted while still incomplete (bytes; h11's default).
MAX_HEAD_BYTES = 16 * 1024

#: Seconds a request (head and body) may take to arrive, from the connection or its first byte.
REQUEST_TIMEOUT = 10.0


def event_loop() -> str:
    """``"uvloop"`` where it is installed, else ``"asyncio"`` (uvicorn's ``loop`` option)."""
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def _reply(transport: asyncio.BaseTransport, status: bytes, message: str) -> None:
    body = message.encode()
    transport.write(  # type: ignore[attr-defined]
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
    )
    transport.close()


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a request-head size limit and a request timeout.

    The limits come from the uvicorn config's ``max_head_bytes`` and ``request_timeout``
    attributes (:class:`tabguard.serving._server.ServeConfig` sets them), else the module
    defaults.
    """

    def __init__(self, config: Any, server_state: Any, app_state: Any, _loop: Any = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.max_head_bytes = int(getattr(config, "max_head_bytes", MAX_HEAD_BYTES))
        self.request_timeout = float(getattr(config, "request_timeout", REQUEST_TIMEOUT))
        self._timer: asyncio.TimerHandle | None = None
        self._in_message = False  # a request has begun and not fully arrived
        self._in_head = False  # ... and its head is not complete
        self._head_bytes = 0  # bytes received while the current head was incomplete
        self._begun = False  # a request began during the current data_received call
        self._completed = False  # a request completed during the current data_received call
        self._received_any = False

    # -- the request timer ---------------------------------------------------------------

    def _arm(self) -> None:
        if self._timer is None:
            self._timer = self.loop.call_later(self.request_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self.transport is None or self.transport.is_closing():
            return
        if self._in_head or (not self._in_message and self._received_any):
            self.logger.warning("Request head not received within %.0f s.", self.request_timeout)
            _reply(
                self.transport,
                b"408 Request Timeout",
                f"the request did not arrive within {self.request_timeout:g} s",
            )
        else:
            if self._in_message:
                self.logger.warning(
                    "Request body not received within %.0f s.", self.request_timeout
                )
            self.transport.close()  # idle since connecting, or a body that stopped

    # -- uvicorn protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock for the first request."""
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock."""
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser, enforce the head limit, run the clock until requests are whole."""
        self._received_any = True
        self._arm()  # any byte starts (or continues) the wait for a whole request
        self._begun = self._completed = False
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._in_head:
            # All of ``data`` counts when the head began earlier; when it began in this chunk,
            # the chunk may also end an earlier pipelined request: an upper bound.
            self._head_bytes = len(data) if self._begun else self._head_bytes + len(data)
            if self._head_bytes > self.max_head_bytes:
                self.logger.warning("Request head over %d bytes.", self.max_head_bytes)
                _reply(
                    self.transport,
                    b"431 Request Header Fields Too Large",
                    f"the request line and headers must be at most {self.max_head_bytes} bytes",
                )
                return
        if self._completed and not self._in_message:
            self._disarm()  # every request received is whole; the keep-alive timeout applies

    def on_message_begin(self) -> None:
        """A request begins: its head is being read."""
        super().on_message_begin()
        self._in_message = self._in_head = self._begun = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        """The head is whole: the size limit no longer applies to this request."""
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The request is whole."""
        self._in_message = False
        self._completed = True
        super().on_message_complete()
