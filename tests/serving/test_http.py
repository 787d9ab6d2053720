"""The HTTP protocol of ``tabguard serve`` (httptools on uvloop) and the limits it promises.

The served tests run the real app under ``ServeConfig`` on loopback, in a thread, on the
small model of the fixtures; the request timer is tested with an injected clock.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from tabguard.flags import MemoryFlagStore
from tabguard.serving import MemoryKeyStore, ScoringService, create_app, load_config
from tabguard.serving._http import MAX_HEAD_BYTES, GuardedHttpProtocol, event_loop
from tabguard.serving._server import ServeConfig, describe
from tabguard.training import ModelBundle
from tests.serving._service import free_port
from tests.serving.conftest import body_of, write_config

# --------------------------------------------------------------------------------------------
# Selection


def test_serve_config_selects_httptools_and_uvloop() -> None:
    config = ServeConfig(
        "tabguard.serving._app:app_from_env", request_timeout=7, max_head_bytes=8192
    )
    assert config.http is GuardedHttpProtocol
    assert config.loop == "uvloop" == event_loop()  # a declared dependency on Linux
    assert (config.request_timeout, config.max_head_bytes) == (7, 8192)
    line = describe(request_timeout=7, max_head_bytes=8192)
    assert line == "HTTP: httptools on uvloop; request head <= 8192 bytes, whole request within 7 s"
    assert "uvloop is not installed" in describe(loop="asyncio")


def test_server_settings_are_validated(tmp_path: Path) -> None:
    write_config(tmp_path, "[server]\nrequest_timeout = 0\n")
    with pytest.raises(ValueError, match="request_timeout"):
        load_config(tmp_path)
    write_config(tmp_path, "[server]\nmax_head_bytes = 100\n")
    with pytest.raises(ValueError, match="max_head_bytes"):
        load_config(tmp_path)


# --------------------------------------------------------------------------------------------
# The real app over HTTP


class Served:
    """The scoring app under ``ServeConfig`` in a thread (stores open in its lifespan)."""

    def __init__(self, home: Path, bundle: ModelBundle) -> None:
        keys = MemoryKeyStore()
        self.key = keys.create("bank-a", "decide")[1]
        self.service = ScoringService(
            bundle, load_config(home), key_store=keys, flag_store=MemoryFlagStore()
        )
        self.port = free_port()
        config = ServeConfig(
            create_app(service=self.service), host="127.0.0.1", port=self.port,
            log_level="error", access_log=False,
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:  # a start-up wait, not a timed behaviour
            if time.monotonic() > deadline or not self.thread.is_alive():
                pytest.fail("the server did not start")
            time.sleep(0.02)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=30)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def served(tmp_path: Path, bundle: ModelBundle) -> Iterator[Served]:
    home = tmp_path / "home"
    write_config(
        home, '[server]\nmax_body_bytes = 2048\n[limits]\nper_client = "off"\n'
        "[log]\nflush_interval = 0.05\n",
    )  # fmt: skip
    s = Served(home, bundle)
    yield s
    s.close()


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a content-length from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(lines[0].split()[1]), headers, rest[:length]


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes the connection (EOF or reset within 5 s)."""
    sock.settimeout(5)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def post(key: str | None, body: bytes, extra: bytes = b"") -> bytes:
    auth = b"Authorization: Bearer " + key.encode() + b"\r\n" if key else b""
    return (
        b"POST /v1/decisions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n" + auth
        + extra + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )  # fmt: skip


def test_decisions_and_refusals_over_httptools_one_record_each(
    served: Served, sample_records: list[dict[str, Any]]
) -> None:
    good = json.dumps(body_of(sample_records[0], subject="a")).encode()
    # An oversized body that carries a second request: it must stay body (no smuggling).
    inner = post(served.key, json.dumps(body_of(sample_records[1], subject="smuggled")).encode())
    big = good[:-1] + b', "pad": "' + inner.replace(b'"', b"'") + b" " * 2048 + b'"}'
    sent = [
        (post(served.key, good), 200),
        (post(served.key, b'{"subject_id": "b", "features": {"AGE": NaN}}'), 422),
        (post(served.key, b"{not json"), 422),
        (post(served.key, big), 413),
        (post(None, good), 401),
    ]
    codes = []
    ids = []
    with served.connect() as sock:
        for raw, _ in sent:
            sock.sendall(raw)
            status, headers, body = read_response(sock)
            codes.append(status)
            ids.append(json.loads(body)["decision_id"])
            if headers.get("connection") == "close":
                sock.close()
                sock = served.connect()
        # The connection still answers after the 413, and with the next request only.
        sock.sendall(post(served.key, json.dumps(body_of(sample_records[2], subject="c")).encode()))
        status, _, body = read_response(sock)
        codes.append(status)
        ids.append(json.loads(body)["decision_id"])
    assert codes == [code for _, code in sent] + [200], codes
    served.service.refusals.flush(everything=True)
    assert served.service.log.flush(10)
    log = served.service.log.query()
    accepted = log[log["status"] == "accepted"]
    assert sorted(accepted["subject_id"]) == ["a", "c"]  # never the smuggled one
    # One record per decision request (the 401 is counted in a summary row).
    assert set(ids[:4] + ids[5:]) <= set(log["decision_id"]), (ids, list(log["decision_id"]))
    assert log["decision_id"].is_unique


def test_an_endless_request_head_gets_431_and_the_connection_is_closed(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: t\r\nX-Pad: " + b"a" * (MAX_HEAD_BYTES + 100))
        status, _, body = read_response(sock)  # the head was never finished
        assert status == 431
        assert f"at most {MAX_HEAD_BYTES} bytes".encode() in body
        assert closed_by_server(sock)
    # Many headers, each line ended, the head never finished: the same limit.
    with served.connect() as sock:
        lines = [f"X-H{i}: ".encode() + b"b" * 500 + b"\r\n" for i in range(34)]  # 17 KiB
        sock.sendall(b"GET / HTTP/1.1\r\n" + b"".join(lines))
        status, _, _ = read_response(sock)
        assert status == 431


def test_a_head_under_the_limit_is_served(served: Served) -> None:
    with served.connect() as sock:
        pad = b"X-Pad: " + b"a" * (MAX_HEAD_BYTES - 1024) + b"\r\n"
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: t\r\n" + pad + b"\r\n")
        status, _, body = read_response(sock)
    assert status == 200 and json.loads(body) == {"status": "alive"}


def test_malformed_http_gets_400(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(b"GARBAGE\x00 / HTTP/9\r\n\r\n")
        status, _, _ = read_response(sock)
        assert status == 400
        assert closed_by_server(sock)


# --------------------------------------------------------------------------------------------
# The request timer (injected clock: the timer's callback is fired by the test)


class Timers:
    """``loop.call_later`` that records timers instead of scheduling them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: list[tuple[float, Callable[[], None], asyncio.Handle]] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        handle = asyncio.TimerHandle(0.0, callback, (), self.loop)
        self.pending.append((delay, callback, handle))
        return handle

    def live(self) -> list[tuple[float, Callable[[], None]]]:
        return [(d, cb) for d, cb, h in self.pending if not h.cancelled()]

    def fire(self) -> None:
        ((_, callback),) = self.live()
        callback()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loop, name)


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5555), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def protocol() -> Iterator[tuple[GuardedHttpProtocol, Transport, Timers]]:
    loop = asyncio.new_event_loop()
    timers = Timers(loop)
    config = ServeConfig(_ok, request_timeout=10, log_level="error")
    proto = GuardedHttpProtocol(config, ServerState(), {}, _loop=timers)  # type: ignore[arg-type]
    transport = Transport()
    proto.connection_made(transport)
    yield proto, transport, timers
    proto.connection_lost(None)  # a request task waiting for its body sees the disconnect
    for task in asyncio.all_tasks(loop):
        task.cancel()
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()


def test_a_connection_that_sends_nothing_is_closed_after_the_timeout(
    protocol: tuple[GuardedHttpProtocol, Transport, Timers],
) -> None:
    _, transport, timers = protocol
    assert [d for d, _ in timers.live()] == [10.0]
    timers.fire()
    assert transport.closed and transport.written == b""


def test_a_trickled_head_gets_408(protocol: tuple[GuardedHttpProtocol, Transport, Timers]) -> None:
    proto, transport, timers = protocol
    for byte in b"POST /v1/decisions HTTP/1.1\r\nHost: t\r\n":
        proto.data_received(bytes([byte]))  # slowloris: one byte at a time
    assert len(timers.live()) == 1  # the clock runs from the connection, not from each byte
    timers.fire()
    assert transport.written.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert transport.closed


def test_a_body_that_stops_arriving_closes_the_connection(
    protocol: tuple[GuardedHttpProtocol, Transport, Timers],
) -> None:
    proto, transport, timers = protocol
    proto.data_received(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789")
    timers.fire()
    assert transport.closed and b"408" not in transport.written


def test_a_whole_request_stops_the_clock_and_any_later_byte_starts_it(
    protocol: tuple[GuardedHttpProtocol, Transport, Timers],
) -> None:
    proto, transport, timers = protocol
    proto.data_received(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert timers.live() == []  # the request is whole: no timer while the app works
    # Bytes that never make a request (blank lines) cancel uvicorn's keep-alive timer; ours
    # starts again, so they cannot hold the connection open.
    proto.data_received(b"\r\n")
    assert len(timers.live()) == 1
    timers.fire()
    assert transport.closed
