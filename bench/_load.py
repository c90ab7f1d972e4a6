"""A lean HTTP/1.1 load generator for POST /send: the benchmarks' measuring instrument.

aiohttp's client costs about 0.18 ms of CPU per request here, more than the bare aiohttp app
it is meant to measure (0.12 ms): on a two-core machine it took one core to itself and was the
bottleneck of every figure above 5,000 requests a second. This one keeps `concurrency`
keep-alive connections, each with one request in flight, writes pre-built request bytes and
reads only the status line and Content-Length of each answer (the servers measured always
send one; no chunked bodies), so it costs a few hundredths of a millisecond per request.

Each connection sends its next request as soon as the previous answer is complete, and the
latency of a request is from its write to the end of its answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

_HEADER_END = b"\r\n\r\n"


class LoadError(RuntimeError):
    """The server answered something other than 202, or closed a connection."""


class _Connection(asyncio.Protocol):
    def __init__(self, next_request: Callable[[], bytes | None], latencies: list[float]) -> None:
        self._next = next_request
        self._latencies = latencies
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._started = 0.0
        self._body_end = -1  # where the current answer ends in the buffer, once known
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._send()

    def _send(self) -> None:
        assert self._transport is not None
        request = self._next()
        if request is None:
            self._transport.close()
            if not self.done.done():
                self.done.set_result(None)
            return
        self._started = time.perf_counter()
        self._transport.write(request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._body_end < 0:
            head_end = self._buffer.find(_HEADER_END)
            if head_end < 0:
                return
            status = bytes(self._buffer[9:12])
            if status != b"202":
                self._fail(f"answer {status.decode()}: {bytes(self._buffer[head_end + 4 :])!r}")
                return
            try:
                self._body_end = head_end + 4 + _content_length(bytes(self._buffer[:head_end]))
            except LoadError as exc:
                self._fail(str(exc))
                return
        if len(self._buffer) < self._body_end:
            return
        self._latencies.append(time.perf_counter() - self._started)
        del self._buffer[: self._body_end]
        self._body_end = -1
        self._send()

    def _fail(self, why: str) -> None:
        if not self.done.done():
            self.done.set_exception(LoadError(why))
        self.close()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(LoadError(f"connection closed mid-run: {exc!r}"))


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise LoadError("an answer without Content-Length")


def send_requests(
    url: str, path: str, token: str | None, bodies: Iterator[bytes]
) -> Callable[[], bytes | None]:
    """A function giving the next POST's bytes, or None when `bodies` is spent."""
    parts = urlsplit(url)
    head = f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    prefix = head.encode()

    def next_request() -> bytes | None:
        body = next(bodies, None)
        if body is None:
            return None
        return b"%sContent-Length: %d\r\n\r\n%s" % (prefix, len(body), body)

    return next_request


async def run(
    url: str, path: str, token: str | None, bodies: Iterator[bytes], concurrency: int
) -> tuple[float, list[float]]:
    """POST every body of `bodies` to `url` + `path`, `concurrency` at a time: (seconds the
    whole run took, each request's latency in seconds)."""
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"{url!r} names no host and port")
    host, port = parts.hostname, parts.port
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    next_request = send_requests(url, path, token, bodies)
    started = time.perf_counter()
    connections: list[_Connection] = []
    try:
        for _ in range(concurrency):
            _, connection = await loop.create_connection(
                lambda: _Connection(next_request, latencies), host, port
            )
            connections.append(connection)
        await asyncio.gather(*(c.done for c in connections))
    finally:  # one failed: the others stop too
        for connection in connections:
            connection.close()
    return time.perf_counter() - started, latencies
