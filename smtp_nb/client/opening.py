"""Opening a connection: over TCP, a Unix socket or a given socket, with TLS from the start or not, to the greeting.

Every failure names what it tried to reach as "HOST on port PORT", the words code written for aiosmtplib
matches on, besides saying why and what to do.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from typing import Any

from .connection import Connection, describe_tls_error, duration
from .errors import (
    SMTPConnectError,
    SMTPConnectResponseError,
    SMTPConnectTimeoutError,
    SMTPReadTimeoutError,
    SMTPServerDisconnected,
    tls_error,
)
from .options import ConnectOptions
from .response import SMTPResponse, SMTPStatus

__all__ = ["make_tls_context", "open_connection"]


async def make_tls_context(options: ConnectOptions) -> ssl.SSLContext:
    """The options' TLS context: the one given, or one built off the event loop (it reads certificate files)."""
    if options.tls_context is not None:
        return options.tls_context
    return await asyncio.get_running_loop().run_in_executor(None, options.build_tls_context)


async def open_connection(conn: Connection, opts: ConnectOptions, timeout: float | None) -> SMTPResponse:
    """Connect ``conn`` as ``opts`` say and read the server's greeting (220), all within ``timeout``."""
    loop = conn.loop
    where = opts.where()
    given_socket = opts.sock is not None or opts.socket_path is not None
    named = where if given_socket else f"{opts.host} on port {opts.effective_port}"
    context = await make_tls_context(opts) if opts.use_tls else None
    server_hostname = opts.hostname if context is not None else None
    if context is not None and context.check_hostname and not server_hostname:
        raise ValueError("hostname= is needed to verify the certificate over sock or socket_path")
    tls_kwargs: dict[str, Any] = {}
    if context is not None:  # asyncio wants a positive handshake timeout; timeout=0 expires in wait_for
        tls_kwargs = {"ssl": context, "server_hostname": server_hostname, "ssl_handshake_timeout": timeout or None}
    conn.transcript.record("*", f"connecting to {where}" + (" with TLS" if context else ""))
    if opts.sock is not None:
        opening = loop.create_connection(lambda: conn, sock=opts.sock, **tls_kwargs)
    elif opts.socket_path is not None:
        opening = loop.create_unix_connection(lambda: conn, os.fsdecode(opts.socket_path), **tls_kwargs)
    else:
        opening = loop.create_connection(
            lambda: conn, opts.host, opts.effective_port, local_addr=opts.source_address, **tls_kwargs
        )
    suffix = "" if given_socket else f" (error connecting to {named})"
    try:
        await asyncio.wait_for(opening, timeout)
    except asyncio.TimeoutError:
        raise SMTPConnectTimeoutError(
            f"Timed out connecting to {named}: connecting took longer than {duration(timeout)}"
        ) from None
    except ssl.SSLError as exc:
        raise tls_error(exc, describe_tls_error(exc, server_hostname or opts.host) + suffix) from exc
    except OSError as exc:
        # A server that hangs up during the TLS handshake gives a ConnectionResetError with no text.
        reason = (
            exc.strerror
            or str(exc)
            or ("the server closed the connection during the TLS handshake" if context else type(exc).__name__)
        )
        raise SMTPConnectError(f"cannot connect to {where}: {reason}{suffix}") from exc
    try:
        (greeting,) = await conn.read(1, timeout)
    except SMTPReadTimeoutError:
        hint = (
            "; a server that speaks TLS from the start waits for the client's TLS hello: "
            "connect with use_tls=True if it does"
        )
        raise SMTPConnectTimeoutError(
            f"Timed out connecting to {named}: it accepted the connection but sent no greeting within "
            f"{duration(timeout)}{'' if context else hint}"
        ) from None
    except SMTPServerDisconnected as exc:
        if isinstance(conn.lost, ssl.SSLError):  # TLS 1.3: a refused client certificate shows after the handshake
            message = describe_tls_error(conn.lost, server_hostname or opts.host) + suffix
            raise tls_error(conn.lost, message) from exc
        raise SMTPConnectError(f"{where} closed the connection before greeting: {exc}{suffix}") from exc
    if greeting.code != SMTPStatus.ready:
        raise SMTPConnectResponseError(greeting.code, greeting.message)
    return greeting
