"""The benchmarks' lean load generator (bench/_load.py) against a real aiohttp server: it
sends every body once, times each request, reads answers however the bytes arrive, and stops
with a clear error on an answer other than 202 or a closed connection."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _bench_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_load = _bench_module("_load")


async def _server(handler: web.Handler) -> TestServer:
    app = web.Application()
    app.router.add_post("/send", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def test_every_body_is_sent_once_with_its_headers() -> None:
    seen: list[bytes] = []
    auth: set[str | None] = set()

    async def send(request: web.Request) -> web.Response:
        seen.append(await request.read())
        auth.add(request.headers.get("Authorization"))
        # A body of varying length, so answers end at different offsets in the stream.
        return web.json_response({"n": "x" * (len(seen) % 7)}, status=202)

    server = await _server(send)
    try:
        bodies = [b'{"n": %d}' % n for n in range(300)]
        elapsed, latencies = await _load.run(
            str(server.make_url("/")), "/send", "tok", iter(bodies), 8
        )
    finally:
        await server.close()
    assert sorted(seen) == sorted(bodies)
    assert auth == {"Bearer tok"}
    assert len(latencies) == 300
    assert all(0 < latency <= elapsed for latency in latencies)


async def test_an_answer_other_than_202_stops_the_run() -> None:
    async def send(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"error": "unauthorized"}, status=401)

    server = await _server(send)
    try:
        with pytest.raises(_load.LoadError, match="answer 401"):
            await _load.run(str(server.make_url("/")), "/send", None, iter([b"{}"] * 5), 2)
    finally:
        await server.close()


def test_answers_split_anywhere_are_read_whole() -> None:
    """Fed one byte at a time, a connection still counts each answer once."""
    answer = b"HTTP/1.1 202 Accepted\r\nContent-Length: 5\r\nX: y\r\n\r\nhello"
    sent: list[bytes] = []
    requests = iter([b"a", b"b", b"c"])
    latencies: list[float] = []

    class Transport:
        def write(self, data: bytes) -> None:
            sent.append(data)

        def close(self) -> None:
            sent.append(b"closed")

    async def feed() -> None:
        connection = _load._Connection(lambda: next(requests, None), latencies)
        connection._transport = Transport()
        connection._send()
        for _ in range(3):
            for i in range(len(answer)):
                connection.data_received(answer[i : i + 1])
        assert connection.done.done()

    asyncio.run(feed())
    assert sent == [b"a", b"b", b"c", b"closed"]
    assert len(latencies) == 3


async def test_an_answer_without_content_length_stops_the_run_saying_so() -> None:
    async def send(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=202)  # chunked: no Content-Length
        await response.prepare(request)
        await response.write(b"{}")
        await response.write_eof()
        return response

    server = await _server(send)
    try:
        with pytest.raises(_load.LoadError, match="without Content-Length"):
            await _load.run(str(server.make_url("/")), "/send", None, iter([b"{}"] * 5), 2)
    finally:
        await server.close()
