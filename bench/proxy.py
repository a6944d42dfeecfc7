"""A loopback TCP proxy that counts the HTTP requests going through it, by S3 operation.

Why a proxy: requests per object is the figure that explains most of the times, and the tools are four
different programs (two of them Go binaries); counting where they all meet, in front of the server, needs no
hook in any of them. Why raw bytes: SigV4 signs the Host header and the body, so the proxy forwards every byte
untouched in both directions (`Expect: 100-continue` included) and only reads the client's stream beside it:
each request's head, then its body skipped by Content-Length or chunk sizes.

It runs in a thread of the bench process, and only for the extra round that counts requests: timed rounds go
straight to the server, so the proxy's own cost is never in a measured time.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

# Query parameters that only a bucket listing (ListObjects, ListObjectsV2) sends.
_LIST_PARAMETERS = {"list-type", "prefix", "delimiter", "marker", "continuation-token", "start-after", "max-keys"}


def operation(method: str, target: str, headers: dict[str, str]) -> str:
    """The S3 operation a request is, as far as the report needs: HEAD, GET, LIST, PUT, COPY, POST, DELETE."""
    _, _, query = target.partition("?")
    if method == "PUT" and "x-amz-copy-source" in headers:
        return "COPY"  # CopyObject (or UploadPartCopy): a PUT that names its source in a header
    if method == "GET" and any(part.split("=", 1)[0] in _LIST_PARAMETERS for part in query.split("&")):
        return "LIST"
    return method


class RequestStream:
    """Finds the requests in one connection's client-to-server bytes, fed in whatever pieces they arrive."""

    def __init__(self, count: Callable[[str], None]):
        self.count = count
        self.buffer = bytearray()
        self.state = "head"  # head, body, chunk-size, chunk-data, trailer
        self.remaining = 0

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while self.buffer:
            if self.state in ("body", "chunk-data"):
                taken = min(self.remaining, len(self.buffer))
                del self.buffer[:taken]
                self.remaining -= taken
                if self.remaining:
                    return
                self.state = "head" if self.state == "body" else "chunk-size"
                continue
            if self.state == "head":
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                self._head(bytes(self.buffer[:end]).decode("latin-1"))
                del self.buffer[: end + 4]
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return
            line = bytes(self.buffer[:end])
            del self.buffer[: end + 2]
            if self.state == "chunk-size":
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                self.state, self.remaining = ("trailer", 0) if size == 0 else ("chunk-data", size + 2)  # + CRLF
            elif not line:  # the blank line that ends a chunked body's trailers
                self.state = "head"

    def _head(self, head: str) -> None:
        lines = head.lstrip("\r\n").split("\r\n")
        method, target = (lines[0].split(" ") + ["", ""])[:2]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self.count(operation(method, target, headers))
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self.state = "chunk-size"
        elif length := int(headers.get("content-length") or 0):
            self.state, self.remaining = "body", length


class CountingProxy:
    """`with CountingProxy(upstream) as proxy:` tools use `proxy.endpoint`; `with proxy.counting() as counts:`
    collects the requests made inside the block."""

    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.endpoint = ""
        self._counts: Counter[str] = Counter()
        self._error = ""
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        if not self._ready.wait(10) or not self.endpoint:
            raise RuntimeError("the counting proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @contextmanager
    def counting(self) -> Iterator[Counter[str]]:
        """Requests by operation made while the block runs. A request is counted before it is forwarded, so
        once a tool has exited, every request it had an answer to is in."""
        with self._lock:
            self._counts.clear()
            self._error = ""
        counts: Counter[str] = Counter()
        yield counts
        with self._lock:
            counts.update(self._counts)
        if self._error:
            raise RuntimeError(f"the counting proxy lost count: {self._error}")

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            server = self._loop.run_until_complete(asyncio.start_server(self._connection, "127.0.0.1", 0))
            self.endpoint = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        finally:
            self._ready.set()
        self._loop.run_forever()
        # Connections a server keeps open after the client's half-close: cancel them and let them close.
        server.close()
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self._loop.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        requests: RequestStream | None = RequestStream(self._count)

        def tap(data: bytes) -> None:
            nonlocal requests
            if requests is None:
                return
            try:
                requests.feed(data)
            except ValueError as exc:  # keep forwarding; the count is reported as broken instead
                self._error = f"unparsable request stream ({exc}) near {bytes(requests.buffer[:80])!r}"
                requests = None

        try:
            await asyncio.gather(_pump(reader, up_writer, tap), _pump(up_reader, writer, None))
        except asyncio.CancelledError:
            pass  # the proxy is closing: end quietly (asyncio's stream callback reports a cancelled task)
        finally:
            for end in (writer, up_writer):
                end.close()


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, tap: Callable[[bytes], None] | None) -> None:
    """Copy one direction until EOF, then pass the half-close on (the other direction may still be talking)."""
    try:
        while data := await source.read(1 << 16):
            if tap:
                tap(data)
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
    except (ConnectionError, OSError):
        sink.close()
