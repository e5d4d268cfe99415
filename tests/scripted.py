"""Small real servers that misbehave on purpose: each connection runs a script.

A script is ``async def script(peer: Peer)``; ``Peer`` reads the client's
lines and sends whatever the test wants. The server runs on its own thread
and loop on a free loopback port, like ``smtp_nb.server.LocalServer``.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Awaitable, Callable
from typing import Any


class Peer:
    """One client connection as the script sees it."""

    def __init__(self, server: ScriptedServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer

    async def send(self, text: str | bytes) -> None:
        data = text.encode() if isinstance(text, str) else text
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self, line: str) -> None:
        await self.send(line + "\r\n")

    async def readline(self) -> str:
        """The next command line (without CRLF); '' at end of stream."""
        raw = await self.reader.readline()
        self.server.received += raw
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if raw:
            self.server.lines.append(line)
        return line

    async def read_data(self) -> bytes:
        """Message data up to the lone '.', as sent (still dot-stuffed)."""
        chunks = []
        while True:
            raw = await self.reader.readline()
            self.server.received += raw
            if raw in (b".\r\n", b""):
                break
            chunks.append(raw)
        data = b"".join(chunks)
        self.server.data.append(data)
        return data

    async def serve(
        self, replies: dict[str, str] | None = None, *, ehlo: str = "250-scripted\r\n250 PIPELINING"
    ) -> None:
        """Answer like a plain server until QUIT or EOF; ``replies`` overrides answers by verb."""
        replies = replies or {}
        while True:
            line = await self.readline()
            if not line:
                return
            verb = line.split(" ", 1)[0].upper()
            if verb in replies:
                await self.reply(replies[verb])
            elif verb == "EHLO":
                await self.reply(ehlo)
            elif verb == "DATA":
                await self.reply("354 go ahead")
                await self.read_data()
                await self.reply(replies.get("DATA-END", "250 2.0.0 queued"))
            elif verb == "QUIT":
                await self.reply("221 bye")
                return
            else:
                await self.reply("250 ok")
            if verb in replies and replies[verb].startswith("421"):
                return

    async def trickle(self, data: bytes, interval: float) -> None:
        """Send ``data`` one byte at a time, ``interval`` seconds apart (a server dribbling a reply).

        ``server.trickled`` counts the bytes that went out.
        """
        for i in range(len(data)):
            self.writer.write(data[i : i + 1])
            await self.writer.drain()
            self.server.trickled += 1
            await asyncio.sleep(interval)

    async def start_tls(self, context: ssl.SSLContext) -> None:
        """Upgrade this connection to TLS, as the server (after answering STARTTLS with 220)."""
        if hasattr(self.writer, "start_tls"):  # Python 3.11+
            await self.writer.start_tls(context)
            return
        # Python 3.10: what StreamWriter.start_tls does, by hand.
        await self.writer.drain()
        protocol = self.writer._protocol  # type: ignore[attr-defined]
        transport = await asyncio.get_running_loop().start_tls(
            self.writer.transport, protocol, context, server_side=True
        )
        self.writer._transport = transport  # type: ignore[attr-defined]
        protocol._transport = transport

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass

    async def wait_closed_by_client(self) -> None:
        """Read until the client closes its side."""
        while await self.reader.read(65536):
            pass


Script = Callable[[Peer], Awaitable[Any]]


class ScriptedServer:
    """A loopback TCP server whose every connection runs ``script``."""

    def __init__(self, script: Script, *, host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.host = host
        self.port = 0
        self.ssl_context = ssl_context
        self.lines: list[str] = []
        #: Every byte the scripts read from clients, in order (command lines and message data).
        self.received = bytearray()
        self.trickled = 0
        self.data: list[bytes] = []
        self.connections = 0
        self.errors: list[BaseException] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None

    def start(self) -> ScriptedServer:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _listen(self) -> asyncio.AbstractServer:
        return await asyncio.start_server(self._handle, self.host, 0, ssl=self.ssl_context)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        peer = Peer(self, reader, writer)
        try:
            await self.script(peer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # reported by the test through .errors
            self.errors.append(exc)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, ssl.SSLError, asyncio.CancelledError):
                pass

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            # Every other task of this loop is a connection's, including one accepted but not yet started;
            # one left pending would be destroyed with the loop.
            handlers = asyncio.all_tasks() - {asyncio.current_task()}
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        assert self._thread is not None
        self._thread.join(10)
        loop.close()
        self._loop = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        if self.errors:
            raise self.errors[0]

    def options(self, **extra: Any) -> dict[str, Any]:
        return {"hostname": self.host, "port": self.port, **extra}


async def greet(peer: Peer, greeting: str = "220 scripted ready") -> None:
    await peer.reply(greeting)


def plain(replies: dict[str, str] | None = None, *, ehlo: str = "250-scripted\r\n250 PIPELINING") -> Script:
    """A script that greets and serves, with some replies changed."""

    async def script(peer: Peer) -> None:
        await greet(peer)
        await peer.serve(replies, ehlo=ehlo)

    return script
