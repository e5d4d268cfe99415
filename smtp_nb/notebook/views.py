"""What the magics return: result objects with an HTML table and a plain-text form.

Every object here renders the same data two ways, ``_repr_html_`` and
``__repr__`` (which IPython shows as ``text/plain``, and nbval compares), and
nothing else: no widget view, so a saved notebook reads the same without a
kernel. Neither form holds ids; the only variable parts are ports, times and
what the server said (queue ids), each in its own column or line so that a
sanitizer can find it. Nothing here imports IPython or ipywidgets at module level.
"""

from __future__ import annotations

import datetime
import email.message
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from smtp_nb.client import Delivery, SMTPResponse, TranscriptEntry
from smtp_nb.client.message import flatten_message
from smtp_nb.client.transcript import render
from smtp_nb.html import MessageView, Warnings, view
from smtp_nb.rendering import View, html_table, text_table
from smtp_nb.rendering import escape as _e

from .capabilities import Capabilities
from .errors import describe

if TYPE_CHECKING:
    from smtp_nb.server import LocalServer, ReceivedMessage

    from .session import NamedConnection

__all__ = ["CapabilityReport", "ConnectionList", "Inbox", "Log", "Note", "Reply", "SendResult", "ServerInfo"]

_WARN = 'style="color:#a40000;font-weight:bold"'
_REFUSED = "color:#a40000"


def _indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _clock(timestamp: float, *, millis: bool = False) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp)
    return moment.strftime("%H:%M:%S.%f")[:-3] if millis else moment.strftime("%H:%M:%S")


def _lines_html(lines: Sequence[str]) -> str:
    return "".join(f"<div{' ' + _WARN if line.startswith('WARNING') else ''}>{_e(line)}</div>" for line in lines)


class Note(View):
    """Lines that say what a magic did (``closed connection 'a' ...``), as text and as HTML."""

    def __init__(self, *lines: str) -> None:
        self.lines = [line for line in lines if line]

    def _text(self) -> str:
        return "\n".join(self.lines)

    def _html(self) -> str:
        return _lines_html(self.lines)


class Help(Note):
    """A magic's help (``%magic --help``): the usage and its options, kept as preformatted text."""

    def _html(self) -> str:
        return f"<pre>{_e(self._text())}</pre>"


# -- capabilities ----------------------------------------------------------------------


class CapabilityReport(View):
    """What a connection offers (``%smtp_connect``, ``%smtp_ehlo``); ``capabilities`` holds the data.

    The HTML is a table of extensions whose meanings open (``<details>``) on
    the EHLO line behind them: it works wherever the notebook is read, with
    no kernel. ``widget()`` makes the live capability explorer (ipywidgets),
    for those who want it in a running kernel.
    """

    def __init__(self, capabilities: Capabilities) -> None:
        self.capabilities = capabilities
        self._widget: Any = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.capabilities, name)

    def widget(self) -> Any:
        """The capability explorer (an ipywidgets box), made once; needs a kernel to be live."""
        if self._widget is None:
            from .widgets import CapabilityExplorer

            self._widget = CapabilityExplorer(self.capabilities, text=self._text())
        return self._widget

    def _rows(self) -> list[tuple[str, str]]:
        return [(e.label, e.meaning) for e in self.capabilities.extensions]

    def _text(self) -> str:
        c = self.capabilities
        lines = [c.heading(), *c.tls_lines(), c.login_line()]
        if not c.esmtp:
            lines.append("the server answered HELO only: it offers no extensions")
        else:
            lines.append(f"extensions ({len(c.extensions)}):")
            lines.append(_indent(text_table(("extension", "meaning"), self._rows())))
        return "\n".join(lines)

    def _html(self) -> str:
        c = self.capabilities
        parts = [f"<div><b>{_e(c.heading())}</b></div>", _lines_html([*c.tls_lines(), c.login_line()])]
        if not c.esmtp:
            parts.append("<div>the server answered HELO only: it offers no extensions</div>")
            return "\n".join(parts)
        parts.append(f"<div>extensions ({len(c.extensions)}), click one for the line the server sent:</div>")
        rows = []
        for e in c.extensions:
            known = "" if e.known else " <i>(unknown to smtp_nb)</i>"
            params = f"<div>parameters: <code>{_e(e.params)}</code></div>" if e.params else ""
            rows.append(
                f'<tr><td style="text-align:left;vertical-align:top;padding:1px 8px 1px 0"><code>{_e(e.label)}</code>'
                f'</td><td style="text-align:left"><details><summary>{_e(e.meaning)}</summary>'
                f"<div>EHLO line: <code>250-{_e(e.label)}</code>{known}</div>{params}</details></td></tr>"
            )
        parts.append(
            '<table class="smtp-nb smtp-nb-capabilities" style="border-collapse:collapse"><thead><tr>'
            '<th style="text-align:left">extension</th><th style="text-align:left">meaning</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
        return "\n".join(parts)


# -- sending --------------------------------------------------------------------------

_QUEUE_ID = re.compile(r"queued as\s+<?([A-Za-z0-9._@-]+)", re.IGNORECASE)


class SendResult(View):
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
        warnings: Warnings | None = None,
    ) -> None:
        self.message = message
        self.sender = sender
        self.recipients = list(recipients)
        self.delivery = delivery
        self.connection = connection
        #: For a dry run, what ``smtp_nb.html.check`` found.
        self.warnings = warnings

    @property
    def view(self) -> MessageView:
        """The message as its recipient will see it (as it goes on the wire: no Bcc), with the warnings."""
        return view(flatten_message(self.message, utf8=True), warnings=self.warnings)

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
            return f"{self.summary()}\n---\n{self.view.text()}"
        return f"{self.summary()}\n{_indent(text_table(self._HEADERS, self.rows()))}"

    def _html(self) -> str:
        head = f"<div><b>{_e(self.summary())}</b></div>"
        if self.delivery is None:
            return f"{head}\n{self.view.html()}"
        rows = self.rows()
        styles = [_REFUSED if row[4] in ("refused", "not sent") else None for row in rows]
        return f"{head}\n{html_table(self._HEADERS, rows, styles=styles)}"


def _status(reply: SMTPResponse) -> str:
    """The reply's enhanced status code (RFC 3463), or, from a server that gives none, its class in words."""
    if reply.enhanced_status:
        return reply.enhanced_status
    return {2: "success", 3: "go on", 4: "temporary failure", 5: "permanent failure"}.get(reply.code // 100, "")


# -- one command ------------------------------------------------------------------------


class Reply(View):
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
        style = f' style="{_REFUSED}"' if self.response.code >= 400 else ""
        return f"<pre>&gt; {_e(self.command)}\n<span{style}>{_e(chr(10).join(self._lines()))}</span></pre>"


# -- connections -----------------------------------------------------------------------


class ConnectionList(View):
    """The session's connections (``%smtp_connections``), with the profile each came from."""

    _HEADERS = ("name", "server", "profile", "state", "TLS", "user", "current")

    def __init__(self, connections: Sequence[NamedConnection], current: str | None) -> None:
        self.rows: list[tuple[str, ...]] = []
        for conn in connections:
            client = conn.client
            connected = client.is_connected
            tls = "yes" if connected and client.is_tls else ("no" if connected else "")
            self.rows.append(
                (
                    conn.name,
                    conn.where,
                    conn.profile or ("(embedded)" if conn.embedded else ""),
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


class Log(View):
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


class ServerInfo(View):
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
            clear = " (also unencrypted)" if not server.auth_require_tls and (server.starttls or server.tls) else ""
            found.append(
                f"AUTH{clear} for demo user {users}, required before mail (password: smtp_nb.server.demo_password())"
            )
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

    def view(self, number: int, *, remote: bool = False) -> MessageView:
        """Message ``number`` as its recipient will see it (``%smtp_inbox N``); ``remote=True`` loads remote images."""
        return view(self.received[number], remote=remote)

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
