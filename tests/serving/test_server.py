"""The multi-worker listener: every accepted connection gets ``TCP_NODELAY``."""

from __future__ import annotations

import asyncio
import socket

from tabguard.serving._server import NoDelayConfig, tcp_listener


def test_tcp_listener_is_a_nodelay_tcp_socket_on_the_same_descriptor() -> None:
    raw = socket.socket(socket.AF_INET)  # how uvicorn binds its multi-worker listener
    fd = raw.fileno()
    raw.bind(("127.0.0.1", 0))
    sock = tcp_listener(raw)
    try:
        assert sock.fileno() == fd and raw.fileno() == -1
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert sock.get_inheritable()
    finally:
        sock.close()


def test_connections_accepted_by_asyncio_on_the_listener_have_nodelay() -> None:
    async def main() -> int:
        raw = socket.socket(socket.AF_INET)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        raw.bind(("127.0.0.1", 0))
        sock = tcp_listener(raw)
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted = writer.get_extra_info("socket")
            seen.set_result(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(handle, sock=sock)
        port = sock.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        value = await asyncio.wait_for(seen, 10)
        writer.close()
        server.close()
        await server.wait_closed()
        return value

    assert asyncio.run(main()) != 0


def test_unix_sockets_are_left_alone(tmp_path: object) -> None:
    a, b = socket.socketpair(socket.AF_UNIX)
    try:
        assert tcp_listener(a) is a
    finally:
        a.close()
        b.close()


def test_config_binds_the_listener_with_nodelay() -> None:
    config = NoDelayConfig("tabguard.serving._app:app_from_env", host="127.0.0.1", port=0)
    sock = config.bind_socket()
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        sock.close()
