"""What the magics return: result objects with an HTML table, a plain-text form, and a widget where it helps.

Every object here renders the same data two ways, ``_repr_html_`` and
``__repr__`` (which IPython shows as ``text/plain``, and nbval compares). Neither
holds ids, and the only variable parts are ports, times and what the server
said (queue ids), each in its own column or line so that a sanitizer can
find it. Nothing here imports IPython or ipywidgets at module level.
"""

from __future__ import annotations

import abc
import datetime
import email.message
import html
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from smtp_nb.client import Delivery, SMTPResponse, TranscriptEntry
from smtp_nb.client.message import flatten_message
from smtp_nb.client.transcript import render

from .capabilities import Capabilities
from .errors import describe

if TYPE_CHECKING:
    from smtp_nb.server import LocalServer, ReceivedMessage

    from .session import NamedConnection

__all__ = ["CapabilityReport", "ConnectionList", "Inbox", "Log", "Reply", "SendResult", "ServerInfo"]

_TABLE = '<table class="smtp-nb" style="border-collapse:collapse">'
_WARN = 'style="color:#a40000;font-weight:bold"'
_REFUSED_ROW = ' style="color:#a40000"'


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def html_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, refused: Iterable[bool] = ()) -> str:
    """An HTML table; rows flagged in ``refused`` are drawn in red."""
    flags = list(refused)
    head = "".join(f'<th style="text-align:left">{_e(h)}</th>' for h in headers)
    body = []
    for i, row in enumerate(rows):
        style = _REFUSED_ROW if i < len(flags) and flags[i] else ""
        cells = "".join(f'<td style="text-align:left">{_e(c)}</td>' for c in row)
        body.append(f"<tr{style}>{cells}</tr>")
    return f"{_TABLE}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def text_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table with aligned columns (the last column is not padded)."""
    table = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    lines = []
    for row in table:
        cells = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _clock(timestamp: float, *, millis: bool = False) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp)
    return moment.strftime("%H:%M:%S.%f")[:-3] if millis else moment.strftime("%H:%M:%S")


class _View(abc.ABC):
    """Plain text for terminals and nbval, HTML for notebooks; subclasses give ``_text()`` and ``_html()``."""

    @abc.abstractmethod
    def _text(self) -> str: ...

    @abc.abstractmethod
    def _html(self) -> str: ...

    def __repr__(self) -> str:
        return self._text()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self._text())

    def _repr_html_(self) -> str:
        return self._html()


# -- capabilities ----------------------------------------------------------------------


class CapabilityReport(_View):
    """What a connection offers (``%smtp_connect``, ``%smtp_ehlo``); ``capabilities`` holds the data.

    In a kernel (and unless ``%config SMTPMagics.widgets = False``) it also
    shows as a capability explorer widget; ``widget()`` makes one anywhere.
    """

    def __init__(self, capabilities: Capabilities, *, show_widget: bool = False) -> None:
        self.capabilities = capabilities
        self.show_widget = show_widget
        self._widget: Any = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.capabilities, name)

    def widget(self) -> Any:
        """The capability explorer (an ipywidgets box), made once."""
        if self._widget is None:
            from .widgets import CapabilityExplorer

            self._widget = CapabilityExplorer(self)
        return self._widget

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any] | None:
        if not self.show_widget:
            return None
        bundle = self.widget()._repr_mimebundle_()
        bundle.pop("text/plain", None)  # ours (``__repr__``) is complete; the widget's is cut at 110 characters
        return dict(bundle)

    def heading(self) -> str:
        c = self.capabilities
        return f"SMTP connection {c.name!r} to {c.where}" + (f" (server {c.server_name})" if c.server_name else "")

    def tls_lines(self) -> list[str]:
        tls = self.capabilities.tls
        if tls is None:
            return ["TLS: none - the connection is not encrypted"]
        lines = [f"TLS: {tls.summary}", f"certificate: {tls.certificate}"]
        if not tls.verified:
            lines.append(
                "WARNING: the certificate was NOT verified (--no-verify): anyone on the way could read this connection"
            )
        return lines

    def login_line(self) -> str:
        c = self.capabilities
        if c.user is not None:
            return f"login: logged in as {c.user}"
        offered = c.auth_methods
        return "login: not logged in" + (f" (AUTH offers {' '.join(offered)})" if offered else "")

    def _rows(self) -> list[tuple[str, str]]:
        return [(e.label, e.meaning) for e in self.capabilities.extensions]

    def _text(self) -> str:
        c = self.capabilities
        lines = [self.heading(), *self.tls_lines(), self.login_line()]
        if not c.esmtp:
            lines.append("the server answered HELO only: it offers no extensions")
        else:
            lines.append(f"extensions ({len(c.extensions)}):")
            lines.append(_indent(text_table(("extension", "meaning"), self._rows())))
        return "\n".join(lines)

    def _html(self) -> str:
        c = self.capabilities
        tls = self.tls_lines()
        parts = [f"<div><b>{_e(self.heading())}</b></div>"]
        for line in tls:
            style = f" {_WARN}" if line.startswith("WARNING") else ""
            parts.append(f"<div{style}>{_e(line)}</div>")
        parts.append(f"<div>{_e(self.login_line())}</div>")
        if not c.esmtp:
            parts.append("<div>the server answered HELO only: it offers no extensions</div>")
        else:
            parts.append(html_table(("extension", "meaning"), self._rows()))
        return "\n".join(parts)


# -- sending --------------------------------------------------------------------------

_QUEUE_ID = re.compile(r"queued as\s+<?([A-Za-z0-9._@-]+)", re.IGNORECASE)


class SendResult(_View):
    """What ``%%smtp_send`` did: the message, and every reply when it was sent.

    ``delivery`` is the client's ``Delivery`` (None for a dry run); ``error``
    the exception if the message was not delivered.
    """

    def __init__(
        self,
        message: email.message.EmailMessage,
        sender: str,
        recipients: Sequence[str],
        *,
        delivery: Delivery | None = None,
        connection: str | None = None,
    ) -> None:
        self.message = message
        self.sender = sender
        self.recipients = list(recipients)
        self.delivery = delivery
        self.connection = connection

    @property
    def dry_run(self) -> bool:
        return self.delivery is None

    @property
    def error(self) -> BaseException | None:
        return self.delivery.error if self.delivery is not None else None

    @property
    def status(self) -> str:
        """``dry run``, or the delivery's status: accepted, refused, unknown, failed."""
        return "dry run" if self.delivery is None else self.delivery.status

    @property
    def accepted(self) -> list[str]:
        return self.delivery.accepted if self.delivery is not None and self.delivery.error is None else []

    @property
    def refused(self) -> dict[str, SMTPResponse]:
        return self.delivery.refused if self.delivery is not None else {}

    @property
    def data_reply(self) -> SMTPResponse | None:
        return self.delivery.data if self.delivery is not None else None

    @property
    def queue_id(self) -> str | None:
        """The server's id for the message, from its reply to the data (``queued as ...``)."""
        reply = self.data_reply
        match = _QUEUE_ID.search(reply.message) if reply is not None else None
        return match.group(1) if match else None

    def wire_text(self) -> str:
        """The message as it goes to the server (no Bcc header)."""
        return flatten_message(self.message, utf8=True).decode("utf-8", "replace").replace("\r\n", "\n")

    def summary(self) -> str:
        via = f" via {self.connection!r}" if self.connection else ""
        if self.delivery is None:
            return f"dry run: nothing was sent; envelope from {self.sender or '<>'} to {', '.join(self.recipients)}"
        d = self.delivery
        if d.status == "accepted":
            text = f"sent{via}: {len(d.accepted)} of {len(d.recipients)} recipients accepted"
            if d.refused:
                refused = ", ".join(f"{r} ({reply.code})" for r, reply in d.refused.items())
                text += f"; refused: {refused}"
            return text
        if d.status == "unknown":
            return (
                f"unknown{via}: the connection ended after the message was sent but before the server "
                "confirmed it; it may have been delivered, so check before sending again"
            )
        return f"not sent{via}: {describe(d.error) if d.error is not None else d.status}"

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """One row per recipient (address, code, enhanced status, reply, outcome), then the data's."""
        if self.delivery is None:
            return []
        d = self.delivery
        rows = []
        for recipient in d.recipients:
            reply = d.rcpt.get(recipient)
            if reply is None:
                rows.append((recipient, "", "", "no reply (not asked)", "not sent"))
            else:
                outcome = "accepted" if reply.code in (250, 251) else "refused"
                rows.append((recipient, str(reply.code), _status(reply), reply.message, outcome))
        if d.mail is not None and d.mail.code != 250:
            rows.insert(
                0,
                (f"MAIL FROM:<{d.sender}>", str(d.mail.code), _status(d.mail), d.mail.message, "refused"),
            )
        if d.data is not None:
            queued = f"queue id {self.queue_id}" if self.queue_id else ("accepted" if d.data.code == 250 else "refused")
            rows.append(("DATA", str(d.data.code), _status(d.data), d.data.message, queued))
        return rows

    _HEADERS = ("recipient", "code", "status", "reply", "outcome")

    def _text(self) -> str:
        if self.delivery is None:
            return f"{self.summary()}\n---\n{self.wire_text().rstrip()}"
        return f"{self.summary()}\n{_indent(text_table(self._HEADERS, self.rows()))}"

    def _html(self) -> str:
        head = f"<div><b>{_e(self.summary())}</b></div>"
        if self.delivery is None:
            return f"{head}\n<pre>{_e(self.wire_text().rstrip())}</pre>"
        rows = self.rows()
        refused = [row[4] in ("refused", "not sent") for row in rows]
        return f"{head}\n{html_table(self._HEADERS, rows, refused=refused)}"


def _status(reply: SMTPResponse) -> str:
    """The reply's enhanced status code (RFC 3463), or, from a server that gives none, its class in words."""
    if reply.enhanced_status:
        return reply.enhanced_status
    return {2: "success", 3: "go on", 4: "temporary failure", 5: "permanent failure"}.get(reply.code // 100, "")


# -- one command ------------------------------------------------------------------------


class Reply(_View):
    """The server's reply to one raw command (``%smtp``)."""

    def __init__(self, command: str, response: SMTPResponse) -> None:
        self.command = command
        self.response = response

    @property
    def code(self) -> int:
        return self.response.code

    @property
    def message(self) -> str:
        return self.response.message

    def _lines(self) -> list[str]:
        return render(self.response).split("\n")  # continuation lines as the server wrote them: 250-...

    def _text(self) -> str:
        return "\n".join([f"> {self.command}", *(f"< {line}" for line in self._lines())])

    def _html(self) -> str:
        style = _REFUSED_ROW if self.response.code >= 400 else ""
        return f"<pre>&gt; {_e(self.command)}\n<span{style}>{_e(chr(10).join(self._lines()))}</span></pre>"


# -- connections -----------------------------------------------------------------------


class ConnectionList(_View):
    """The session's connections (``%smtp_connections``)."""

    _HEADERS = ("name", "server", "state", "TLS", "user", "current")

    def __init__(self, connections: Sequence[NamedConnection], current: str | None) -> None:
        self.rows: list[tuple[str, str, str, str, str, str]] = []
        for conn in connections:
            client = conn.client
            connected = client.is_connected
            tls = "yes" if connected and client.is_tls else ("no" if connected else "")
            self.rows.append(
                (
                    conn.name,
                    conn.where,
                    "open" if connected else "closed",
                    tls,
                    client.authenticated_as or "",
                    "*" if conn.name == current else "",
                )
            )

    def _text(self) -> str:
        if not self.rows:
            return "no SMTP connections (open one with %smtp_connect)"
        return text_table(self._HEADERS, self.rows)

    def _html(self) -> str:
        if not self.rows:
            return f"<div>{_e(self._text())}</div>"
        return html_table(self._HEADERS, self.rows)


# -- transcript ------------------------------------------------------------------------------


class Log(_View):
    """A connection's conversation (``%smtp_log``): ``>`` client, ``<`` server, ``*`` event; secrets redacted."""

    def __init__(self, name: str, entries: Sequence[TranscriptEntry]) -> None:
        self.name = name
        self.entries = list(entries)

    def lines(self) -> list[str]:
        """The conversation without times: ``> EHLO ...``, ``< 250 ...``."""
        return [str(entry) for entry in self.entries]

    def _text(self) -> str:
        if not self.entries:
            return f"the transcript of {self.name!r} is empty"
        return "\n".join(f"{_clock(e.time, millis=True)} {e.direction} {e.text}" for e in self.entries)

    def _html(self) -> str:
        if not self.entries:
            return f"<div>{_e(self._text())}</div>"
        rows = [(_clock(e.time, millis=True), e.direction, e.text) for e in self.entries]
        return html_table(("time", "", "line"), rows)


# -- the embedded server -------------------------------------------------------------------


class ServerInfo(_View):
    """The embedded server's state (``%smtp_server``)."""

    def __init__(self, server: LocalServer | None, *, note: str = "") -> None:
        self.server = server
        self.note = note
        self.running = server is not None and server.running
        self.port = server.port if server is not None else None

    def features(self) -> str:
        server = self.server
        if server is None:
            return ""
        found = [name for name, on in (("STARTTLS", server.starttls), ("TLS", server.tls)) if on]
        if server.auth:
            users = ", ".join(sorted(server.users))
            found.append(f"AUTH for demo user {users} (its password is in smtp_nb.server.DEMO_USERS)")
        return ", ".join(found) or "plain, no AUTH"

    def _text(self) -> str:
        if not self.running or self.server is None:
            return self.note or "the embedded SMTP server is not running (start it with %smtp_server)"
        server = self.server
        lines = [f"embedded SMTP server on {server.host}:{server.port}", f"features: {self.features()}"]
        lines.append(
            f"inbox: {_count(len(server.messages), 'message')} (%smtp_inbox); %smtp_connect with no host connects here"
        )
        if self.note:
            lines.insert(0, self.note)
        return "\n".join(lines)

    def _html(self) -> str:
        return "".join(f"<div>{_e(line)}</div>" for line in self._text().split("\n"))


class Inbox(list):  # type: ignore[type-arg]
    """The embedded server's mail (``%smtp_inbox``): a list of ``email.message.EmailMessage``.

    ``received`` holds the envelopes (sender, recipients, time, TLS, login) in the same order.
    """

    _HEADERS = ("#", "received", "from", "to", "subject", "size")

    def __init__(self, received: Sequence[ReceivedMessage]) -> None:
        super().__init__(item.message for item in received)
        self.received = list(received)

    def _rows(self) -> list[tuple[Any, ...]]:
        return [
            (i, _clock(r.received), r.mail_from or "<>", ", ".join(r.rcpt_tos), r.subject, f"{r.size:,} bytes")
            for i, r in enumerate(self.received)
        ]

    def _text(self) -> str:
        if not self.received:
            return "the inbox is empty"
        return f"{_count(len(self.received), 'message')}\n" + text_table(self._HEADERS, self._rows())

    def __repr__(self) -> str:
        return self._text()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self._text())

    def _repr_html_(self) -> str:
        if not self.received:
            return f"<div>{_e(self._text())}</div>"
        return f"<div>{_count(len(self.received), 'message')}</div>" + html_table(self._HEADERS, self._rows())
