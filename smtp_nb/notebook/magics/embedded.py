"""``%smtp_server`` and ``%smtp_inbox``: an SMTP server inside the kernel, and the mail it received.

With ``--auth`` the server refuses mail until the client logs in, and offers AUTH only once the
connection is encrypted (``--starttls`` or ``--tls``) unless ``--auth-plaintext`` says otherwise.
"""

from __future__ import annotations

from IPython.core.magic import line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from smtp_nb.html import MessageView
from smtp_nb.server import demo_users

from ..errors import NotConnectedError, SMTPNotebookError
from ..views import Help, Inbox, Note, ServerInfo
from .base import SMTPMagicsBase

__all__ = ["ServerMagics"]


@magics_class
class ServerMagics(SMTPMagicsBase):
    """The embedded server and its inbox."""

    @magic_arguments()
    @argument("--auth", action="store_true", help="require a login (PLAIN, LOGIN, CRAM-MD5) as the demo user 'demo'")
    @argument("--starttls", action="store_true", help="offer STARTTLS with a certificate made on the spot")
    @argument("--tls", action="store_true", help="speak TLS from the first byte (like port 465)")
    @argument("--auth-plaintext", action="store_true", help="with --auth: offer AUTH without TLS too")
    @argument("--port", type=int, default=0, help="listen on this port (default: a free one)")
    @argument("--stop", action="store_true", help="stop the server; its mail is discarded")
    @line_magic
    def smtp_server(self, line: str = "") -> ServerInfo | Help:
        """Start an SMTP server inside this kernel, on 127.0.0.1, keeping the mail it receives in memory.

        Nothing leaves the machine: %smtp_connect with no host connects to it,
        and %smtp_inbox shows what arrived. Starting it again while it runs
        changes nothing.
        """
        args = self._parse(self.smtp_server, line)
        if isinstance(args, Help):
            return args
        session = self.session
        if args.stop:
            server = session.server
            count = len(server.messages) if server is not None else 0
            stopped = session.stop_server()
            note = f"the embedded SMTP server stopped (mail discarded: {count})" if stopped else ""
            return ServerInfo(None, note=note or "the embedded SMTP server was not running")
        if args.tls and args.starttls:
            raise self.usage("%smtp_server", "choose --starttls or --tls, not both")
        if args.auth_plaintext and not args.auth:
            raise self.usage("%smtp_server", "--auth-plaintext goes with --auth")
        if args.auth and not (args.tls or args.starttls or args.auth_plaintext):
            raise self.usage(
                "%smtp_server",
                "--auth offers AUTH only over TLS: add --starttls (or --tls), or --auth-plaintext to offer it "
                "unencrypted on this loopback server",
            )
        wanted = {"auth": args.auth, "starttls": args.starttls, "tls": args.tls}
        server = session.server
        if server is not None and server.running:
            running = {"auth": server.auth, "starttls": server.starttls, "tls": server.tls}
            if running != wanted or (args.port and args.port != server.port):
                raise self.usage(
                    "%smtp_server",
                    f"the embedded server already runs on port {server.port} with other options; "
                    "stop it first with %smtp_server --stop",
                )
            return ServerInfo(server, note="the embedded SMTP server is already running")
        try:
            server = session.start_server(
                port=args.port,
                users=demo_users() if args.auth else None,
                auth_required=args.auth,
                auth_require_tls=not args.auth_plaintext,
                **wanted,
            )
        except OSError as exc:
            raise SMTPNotebookError(
                f"cannot start the embedded server on port {args.port}: {exc.strerror or exc}", error=exc
            ) from None
        return ServerInfo(server)

    @magic_arguments()
    @argument("number", nargs="?", type=int, metavar="N", help="show message N as its recipient will see it")
    @argument("--remote", action="store_true", help="with N: let the HTML load remote images (off: nothing loads)")
    @argument("--clear", action="store_true", help="forget every message received so far")
    @line_magic
    def smtp_inbox(self, line: str = "") -> Inbox | MessageView | Note | Help:
        """The mail the embedded server received: time, envelope sender and recipients, subject, size.

        Returns a list of email.message.EmailMessage (its .received holds the envelopes).
        %smtp_inbox N shows message N: headers, the HTML in a sandboxed frame
        (remote loads blocked unless --remote), the plain-text part, the MIME
        tree, attachments and the raw source.
        """
        args = self._parse(self.smtp_inbox, line)
        if isinstance(args, Help):
            return args
        server = self.session.server
        if server is None or not server.running:
            raise NotConnectedError("the embedded server is not running: start it with %smtp_server")
        if args.clear:
            if args.number is not None:
                raise self.usage("%smtp_inbox", "--clear empties the whole inbox: give no message number")
            count = len(server.messages)
            server.clear()
            return Note(f"inbox cleared (removed: {count})")
        inbox = Inbox(list(server))
        if args.number is None:
            if args.remote:
                raise self.usage("%smtp_inbox", "--remote goes with a message number: %smtp_inbox N --remote")
            return inbox
        if not -len(inbox) <= args.number < len(inbox):  # -1 is the last, as in Python
            held = f"messages 0 to {len(inbox) - 1} (or -1 for the last)" if inbox else "no messages"
            raise self.usage("%smtp_inbox", f"there is no message {args.number}: the inbox holds {held}")
        return inbox.view(args.number, remote=args.remote)
