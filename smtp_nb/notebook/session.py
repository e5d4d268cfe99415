"""The kernel's SMTP session: named connections living on one background event loop, and the embedded server.

A magic runs synchronously inside the kernel's own (already running) event
loop, so it cannot wait there for a coroutine. The session owns a second loop
on a daemon thread: every connection lives there, magics hand it coroutines
and wait, and cell code reaches the same connections through ``client()``.
Importing this module imports no IPython, ipywidgets or aiosmtpd.

The rule for cell code (``smtp = smtp_nb.session().client()``): every async
method of the client, called through the proxy, starts at once on the
session's loop and returns a ``Call``. ``await`` it (in a cell, with IPython's
autoawait, or in any coroutine on any loop) or call ``.result()`` to block for
it; left as the last expression of a cell it shows its outcome. Either way
Ctrl-C (or the notebook's stop button) cancels the operation; a cancelled
command closes its connection, and the session stays usable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import inspect
import ipaddress
import threading
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from smtp_nb.client import SMTP, SMTPException, SMTPServerDisconnected
from smtp_nb.client.sync import ThreadsafeJob as _Job

from .errors import NotConnectedError, SMTPNotebookError, describe

if TYPE_CHECKING:
    from smtp_nb.server import LocalServer

__all__ = ["Call", "ClientProxy", "Session", "get_session", "peek_session", "reset_session"]

T = TypeVar("T")

#: Name of the connection ``%smtp_connect`` opens unless told ``--name``.
DEFAULT_NAME = "default"
#: How long QUIT may take for each connection when the session closes.
_QUIT_TIMEOUT = 5.0


@dataclasses.dataclass
class NamedConnection:
    """One named connection of the session."""

    name: str
    client: SMTP
    #: ``host:port`` it reached (the peer's port, so an ephemeral one shows).
    where: str
    #: True if it goes to the embedded server (a reconnect follows the server's current port and certificate).
    embedded: bool = False
    #: The profile it was opened from (``%smtp_connect --profile NAME``), if any.
    profile: str | None = None

    @property
    def is_connected(self) -> bool:
        return self.client.is_connected


def _where(client: SMTP) -> str:
    host = client.hostname or "localhost"
    peer = client.get_transport_info("peername") if client.is_connected else None
    port = peer[1] if isinstance(peer, tuple) and len(peer) >= 2 else client.port
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port else host


class Session:
    """The registry of named connections, the loop they live on, and the embedded server.

    One per process (``get_session()``). Safe to use from any thread except
    the session loop's own.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._connections: dict[str, NamedConnection] = {}
        #: Name of the connection magics use when not told ``--name``.
        self.current: str | None = None
        #: The embedded server (``%smtp_server``), or None.
        self.server: LocalServer | None = None

    def __repr__(self) -> str:
        names = ", ".join(f"{n}{'*' if n == self.current else ''}" for n in self._connections) or "none"
        return f"<smtp_nb Session: connections {names}; embedded server {'on' if self.server else 'off'}>"

    # -- the loop -----------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The session's event loop, started on its thread on first use."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                started = threading.Event()
                thread = threading.Thread(target=_run_loop, args=(loop, started), name="smtp_nb-session", daemon=True)
                thread.start()
                if not started.wait(30):
                    raise RuntimeError("the smtp_nb session loop did not start")
                self._loop, self._thread = loop, thread
            return self._loop

    def _job(self, coro: Coroutine[Any, Any, T]) -> _Job[T]:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(
                "this code runs on the smtp_nb session loop itself: await the coroutine instead of waiting for it"
            )
        return _Job(self.loop, coro)

    def submit(self, coro: Coroutine[Any, Any, T]) -> _Job[T]:
        """Start ``coro`` on the session loop; the job's ``wait()`` blocks for it."""
        job = self._job(coro)
        job.start()
        return job

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the session loop and wait for it; Ctrl-C cancels it and leaves the session usable."""
        return self._job(coro).run()

    # -- connections -----------------------------------------------------------------

    def names(self) -> list[str]:
        with self._lock:
            return list(self._connections)

    def connections(self) -> list[NamedConnection]:
        with self._lock:
            return list(self._connections.values())

    def get(self, name: str | None = None) -> NamedConnection:
        """The connection ``name`` (default: the current one); ``NotConnectedError`` if there is none."""
        with self._lock:
            key = name or self.current
            if key is None:
                raise NotConnectedError("no SMTP connection: open one with %smtp_connect (or session.connect())")
            try:
                return self._connections[key]
            except KeyError:
                known = ", ".join(self._connections) or "none"
                raise NotConnectedError(f"no connection named {key!r} (open connections: {known})") from None

    def is_connected(self, name: str | None = None) -> bool:
        with self._lock:
            conn = self._connections.get(name or self.current or DEFAULT_NAME)
            return conn is not None and conn.is_connected

    def connect(
        self, name: str = DEFAULT_NAME, *, embedded: bool = False, profile: str | None = None, **options: Any
    ) -> NamedConnection:
        """Open a connection (``options`` as for ``smtp_nb.SMTP``) and make it current.

        Raises ``SMTPNotebookError`` if ``name`` is already connected; a
        closed connection of that name is replaced. The client's own
        exceptions (refused, timeout, bad credentials) are raised as they are.
        """
        with self._lock:
            old = self._connections.get(name)
            if old is not None and old.is_connected:
                raise SMTPNotebookError(
                    f"connection {name!r} is already open to {old.where}: "
                    "give the new one another name, or quit this one first"
                )
            self._connections.pop(name, None)
        client = SMTP(**options)
        self.run(client.connect())
        conn = NamedConnection(name, client, _where(client), embedded, profile)
        with self._lock:
            self._connections[name] = conn
            self.current = name
        return conn

    def use(self, name: str) -> NamedConnection:
        """Make ``name`` the current connection."""
        conn = self.get(name)
        with self._lock:
            self.current = name
        return conn

    def call(
        self, operation: Callable[[SMTP], Awaitable[T]], name: str | None = None, *, retry: bool = True
    ) -> tuple[T, list[str]]:
        """Run ``operation(client)`` on the session loop; returns its result and notes for the reader.

        A connection found closed (the server restarted, or hung up on an
        idle client) is opened again first, with a note saying so. With
        ``retry``, an operation that fails because the server had silently
        gone is run once more on a new connection: give ``retry=False`` for
        anything that must not happen twice (an operation can also raise
        ``SMTPServerDisconnected`` itself only when nothing was done yet).
        """
        conn = self.get(name)
        return self.run(self._call(conn, operation, retry))

    async def _call(
        self, conn: NamedConnection, operation: Callable[[SMTP], Awaitable[T]], retry: bool
    ) -> tuple[T, list[str]]:
        notes: list[str] = []
        if not conn.is_connected:
            await self._reconnect(conn, notes)
        try:
            return await operation(conn.client), notes
        except SMTPServerDisconnected:
            if not retry or notes:
                raise
            await self._reconnect(conn, notes)
            return await operation(conn.client), notes

    async def _reconnect(self, conn: NamedConnection, notes: list[str]) -> None:
        before = conn.where
        options = conn.client.options
        server = self.server
        if conn.embedded and server is not None and server.running:
            fresh = server.client_options()
            options = options.replace(
                hostname=fresh["hostname"],
                port=fresh["port"],
                use_tls=fresh.get("use_tls", False),
                start_tls=fresh.get("start_tls"),
                cert_bundle=fresh.get("cert_bundle"),
            )
        try:
            await conn.client.connect(options=options)
        except SMTPException as exc:
            raise SMTPNotebookError(
                f"connection {conn.name!r} to {before} had closed, and opening it again failed: {describe(exc)}",
                error=exc,
            ) from exc
        conn.where = _where(conn.client)
        notes.append(f"connection {conn.name!r} had closed; reconnected to {conn.where}")

    def quit(self, name: str | None = None) -> NamedConnection:
        """Say QUIT on connection ``name`` (default: the current one) and forget it."""
        conn = self.get(name)
        with self._lock:
            self._connections.pop(conn.name, None)
            if self.current == conn.name:
                self.current = next(iter(self._connections), None)
        if conn.is_connected:
            self.run(_quit(conn.client))
        return conn

    def client(self, name: str | None = None) -> ClientProxy:
        """A proxy on connection ``name`` (default: the current one, else ``default``) for cell code.

        Its async methods return a ``Call``: ``await`` it or call ``.result()``.
        """
        return ClientProxy(self, name or self.current or DEFAULT_NAME)

    # -- the embedded server ---------------------------------------------------------

    def reaches_embedded(self, hostname: str | None, port: int | None) -> bool:
        """True if ``hostname:port`` is the running embedded server, by whatever loopback name it is reached."""
        server = self.server
        if server is None or not server.running or port != server.port:
            return False
        if hostname in (None, "localhost", server.host):
            return True
        try:
            return ipaddress.ip_address(hostname.strip("[]")).is_loopback
        except ValueError:
            return False

    def start_server(self, **options: Any) -> LocalServer:
        """Start the embedded server (``options`` as for ``smtp_nb.server.LocalServer``) unless it runs."""
        from smtp_nb.server import LocalServer

        with self._lock:
            if self.server is not None and self.server.running:
                return self.server
            server = LocalServer(**options)
            server.start()
            self.server = server
            return server

    def stop_server(self) -> bool:
        """Stop the embedded server; False if none was running."""
        with self._lock:
            server, self.server = self.server, None
        if server is None:
            return False
        server.stop()
        return True

    # -- the end ------------------------------------------------------------------------

    def close(self) -> None:
        """QUIT every connection, stop the embedded server and the loop. The session can be used again afterwards."""
        with self._lock:
            connections = list(self._connections.values())
            self._connections.clear()
            self.current = None
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        try:
            if loop is not None and connections:
                job = _Job(loop, _quit_all([c.client for c in connections]))
                try:
                    job.run(_QUIT_TIMEOUT * 2)
                except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
                    pass
        finally:
            if loop is not None and thread is not None:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(30)
            self.stop_server()


def _run_loop(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(started.set)
    try:
        loop.run_forever()
    finally:
        try:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


async def _quit(client: SMTP) -> None:
    try:
        await client.quit(timeout=_QUIT_TIMEOUT)
    except SMTPException:
        client.close()
    for _ in range(3):  # let the transport finish closing its socket
        await asyncio.sleep(0)


async def _quit_all(clients: list[SMTP]) -> None:
    await asyncio.gather(*(_quit(c) for c in clients if c.is_connected))
    for client in clients:
        client.close()
    for _ in range(3):
        await asyncio.sleep(0)


async def _close(client: SMTP) -> None:
    client.close()
    for _ in range(3):
        await asyncio.sleep(0)


class Call(Generic[T]):
    """An operation started on the session loop: ``await`` it, or ``.result()`` it.

    As the last expression of a cell it shows the outcome once there is one
    (a failure as one line; use ``.result()`` or ``await`` to make it raise).
    """

    def __init__(self, job: _Job[T], label: str) -> None:
        self._job = job
        self.label = label

    def __await__(self) -> Generator[Any, None, T]:
        return asyncio.wrap_future(self._job.future).__await__()

    def result(self, timeout: float | None = None) -> T:
        """Wait for the outcome and return it (or raise its exception); Ctrl-C cancels the operation."""
        return self._job.wait(timeout)

    def done(self) -> bool:
        return self._job.future.done()

    def cancel(self) -> bool:
        """Cancel the operation (a command in flight closes its connection)."""
        return self._job.future.cancel()

    def __repr__(self) -> str:
        future = self._job.future
        if not future.done():
            state = "running"
        elif future.cancelled():
            state = "cancelled"
        elif future.exception() is not None:
            state = f"failed: {type(future.exception()).__name__}: {describe(future.exception())}"  # type: ignore[arg-type]
        else:
            state = repr(future.result())
        return f"<Call {self.label}: {state}>"

    # IPython's formatters (not ``repr()``) wait for the outcome: the cell's Out shows the reply.

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        try:
            value = self.result()
        except SMTPException as exc:
            printer.text(f"{type(exc).__name__}: {describe(exc)}")
            return
        printer.pretty(value)

    def _repr_html_(self) -> str | None:
        try:
            value = self.result()
        except SMTPException:
            return None
        html = getattr(value, "_repr_html_", None)
        return html() if callable(html) else None


class ClientProxy:
    """The session's connection ``name`` for cell code: sync and ``await`` alike.

    Async client methods return a ``Call`` (see the module's docstring);
    ``send_many`` gives a ``Call`` of the list of deliveries. Other attributes
    (``is_connected``, ``esmtp_extensions``, ``transcript``, ...) are the
    client's own. The connection is looked up by name on every use, so the
    proxy follows a reconnect.
    """

    def __init__(self, session: Session, name: str) -> None:
        object.__setattr__(self, "_session", session)
        object.__setattr__(self, "_name", name)

    @property
    def name(self) -> str:
        return self._name  # type: ignore[no-any-return]

    def _client(self) -> SMTP:
        return self._session.get(self._name).client  # type: ignore[no-any-return]

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self._client(), attribute)
        if inspect.iscoroutinefunction(value):
            return self._wrap(value, attribute)
        if inspect.isasyncgenfunction(value):
            return self._wrap(_collecting(value), attribute)
        return value

    def __setattr__(self, attribute: str, value: Any) -> None:
        setattr(self._client(), attribute, value)

    def _wrap(self, method: Callable[..., Coroutine[Any, Any, T]], attribute: str) -> Callable[..., Call[T]]:
        session: Session = self._session

        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Call[T]:
            return Call(session.submit(method(*args, **kwargs)), f"{self._name}.{attribute}()")

        return call

    def close(self) -> None:
        """Close the connection at once, without QUIT (on the session loop, where it lives)."""
        self._session.run(_close(self._client()))

    def __dir__(self) -> list[str]:
        return sorted(set(dir(SMTP)) | {"name", "close"})

    def __repr__(self) -> str:
        try:
            return f"<session client {self._name!r}: {self._client()!r}>"
        except NotConnectedError:
            return f"<session client {self._name!r}: no such connection yet>"


def _collecting(method: Callable[..., Any]) -> Callable[..., Coroutine[Any, Any, list[Any]]]:
    @functools.wraps(method)
    async def collect(*args: Any, **kwargs: Any) -> list[Any]:
        return [item async for item in method(*args, **kwargs)]

    return collect


_session: Session | None = None
_session_lock = threading.Lock()


def get_session() -> Session:
    """The process's session, made on first use."""
    global _session
    with _session_lock:
        if _session is None:
            _session = Session()
        return _session


def peek_session() -> Session | None:
    """The process's session if one was made, without making one."""
    return _session


def reset_session() -> None:
    """Close the process's session (connections, server, loop) and forget it."""
    global _session
    with _session_lock:
        session, _session = _session, None
    if session is not None:
        session.close()
