"""The connection options, defined and validated in one place.

``SMTP()``, ``connect()``, ``smtp_nb.send()`` and the notebook session's reconnect all build on ``ConnectOptions``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Optional, Union

from .addresses import check_argument
from .redaction import Secret

__all__ = [
    "DEFAULT_TIMEOUT",
    "OPTION_NAMES",
    "SMTP_PORT",
    "SMTP_STARTTLS_PORT",
    "SMTP_TLS_PORT",
    "ConnectOptions",
    "OAuthTokenGenerator",
    "SocketPathType",
    "check_timeout",
    "check_username",
    "helo_name",
]

SMTP_PORT = 25
SMTP_TLS_PORT = 465
SMTP_STARTTLS_PORT = 587
DEFAULT_TIMEOUT = 60

SocketPathType = Union[str, bytes, "os.PathLike[str]"]
OAuthTokenGenerator = Callable[[], Awaitable[str]]


def helo_name(name: str, what: str = "local_hostname") -> str:
    """``name`` as it goes after HELO/EHLO: one word; ``ValueError`` if empty or not one word."""
    name = check_argument(name.strip(), what)
    if not name or any(c.isspace() for c in name):
        raise ValueError(f"{what} {name!r} must be one word, such as a host name or [192.0.2.1]")
    return name


def check_username(username: str | bytes) -> None:
    """Refuse control characters in a login name: base64 hides them on the wire, not from the server.

    A NUL shifts the fields of AUTH PLAIN, a ^A those of XOAUTH2 ('user=U^Aauth=Bearer T').
    """
    text = username.decode("utf-8", "replace") if isinstance(username, bytes) else username
    check_argument(text, "AUTH username")


def check_timeout(timeout: Any) -> None:
    """Accept None (no limit) or a number of seconds >= 0 (0 expires at once)."""
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0):
        raise ValueError(f"timeout must be a number of seconds (0 or more) or None (no limit), not {timeout!r}")


@dataclasses.dataclass(frozen=True)
class ConnectOptions:
    """Where and how to connect and log in; validated whenever one is made (``replace()`` included).

    ``timeout`` is the client's default for every operation. The password is
    kept as a ``Secret``.
    """

    hostname: Optional[str] = None
    port: Optional[int] = None
    username: Optional[Union[str, bytes]] = None
    password: Optional[Secret] = None
    local_hostname: Optional[str] = None
    source_address: Optional[tuple[str, int]] = None
    timeout: Optional[float] = DEFAULT_TIMEOUT
    use_tls: bool = False
    start_tls: Optional[bool] = None
    validate_certs: bool = True
    client_cert: Optional[str] = None
    client_key: Optional[str] = None
    tls_context: Optional[ssl.SSLContext] = None
    cert_bundle: Optional[str] = None
    socket_path: Optional[SocketPathType] = None
    sock: Optional[socket.socket] = None
    oauth_token_generator: Optional[OAuthTokenGenerator] = None
    allow_plaintext_auth: bool = False

    def __post_init__(self) -> None:
        if self.password is not None and not isinstance(self.password, Secret):
            object.__setattr__(self, "password", Secret(self.password))
        if self.local_hostname is not None:
            object.__setattr__(self, "local_hostname", helo_name(self.local_hostname))
        self._validate()

    def _validate(self) -> None:
        if self.use_tls and self.start_tls:
            raise ValueError(
                "use_tls (TLS from the start, port 465) and start_tls=True (upgrade, port 587) exclude each other"
            )
        given_socket = self.sock is not None or self.socket_path is not None
        if self.sock is not None and self.socket_path is not None:
            raise ValueError("give sock or socket_path, not both")
        if given_socket and self.port is not None:
            raise ValueError("port has no meaning with sock or socket_path")
        if self.tls_context is not None and self.client_cert is not None:
            raise ValueError(
                "give tls_context or client_cert/client_key, not both (load the certificate into the context)"
            )
        if self.password is not None and self.oauth_token_generator is not None:
            raise ValueError("password and oauth_token_generator are mutually exclusive: give one or the other")
        if self.use_tls and given_socket and self.hostname is None and self.checks_hostname:
            raise ValueError(
                "use_tls over sock or socket_path needs hostname= to check the server certificate's "
                "host name (or a tls_context with check_hostname=False)"
            )
        if self.hostname is not None:
            check_argument(self.hostname, "hostname")
        if self.username is not None:
            check_username(self.username)
        if self.port is not None and not (
            isinstance(self.port, int) and not isinstance(self.port, bool) and 0 < self.port < 65536
        ):
            raise ValueError(f"port must be a number from 1 to 65535, not {self.port!r}")
        check_timeout(self.timeout)

    def replace(self, **changes: Any) -> ConnectOptions:
        """A validated copy with ``changes``; ``self`` is never altered (``TypeError`` for an unknown name)."""
        unknown = sorted(set(changes) - _FIELDS)
        if unknown:
            raise TypeError(f"unknown connection option {unknown[0]!r}; the options are: {', '.join(sorted(_FIELDS))}")
        return dataclasses.replace(self, **changes)

    @property
    def checks_hostname(self) -> bool:
        """True if TLS would check the certificate's host name."""
        return self.tls_context.check_hostname if self.tls_context is not None else self.validate_certs

    @property
    def host(self) -> str:
        return self.hostname or "localhost"

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        if self.use_tls:
            return SMTP_TLS_PORT
        return SMTP_STARTTLS_PORT if self.start_tls else SMTP_PORT

    def where(self) -> str:
        """``host:port``, the socket path, or "a given socket": for messages."""
        if self.socket_path is not None:
            return os.fsdecode(self.socket_path)
        if self.sock is not None and self.hostname is None:
            return "a given socket"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.effective_port}"

    def build_tls_context(self) -> ssl.SSLContext:
        """The given ``tls_context``, or one made from the certificate options (reads files: not on the loop)."""
        if self.tls_context is not None:
            return self.tls_context
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.cert_bundle)
        if not self.validate_certs:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert is not None:
            context.load_cert_chain(self.client_cert, keyfile=self.client_key)
        return context


#: The names of the options, as ``SMTP()`` and ``connect()`` take them.
OPTION_NAMES = _FIELDS = frozenset(f.name for f in dataclasses.fields(ConnectOptions))


@functools.lru_cache(maxsize=1)
def local_fqdn() -> str:
    """This host's fully qualified name (cached: the first lookup may wait on DNS)."""
    return socket.getfqdn()
