"""``python -m smtp_nb``: start the embedded server, send a message with the client, show what happened.

Needs the ``notebook`` extra (aiosmtpd, trustme). Nothing leaves the machine:
the server listens on a free loopback port and keeps the mail in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from email.message import EmailMessage
from typing import Any

from . import SMTP
from .server import LocalServer, demo_users


def _message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Ada <ada@example.com>"
    message["To"] = "Grace <grace@example.com>, linus@example.com"
    message["Bcc"] = "audit@example.com"
    message["Subject"] = "Hello from smtp_nb"
    message.set_content("This message went through a real SMTP conversation.\n.A line starting with a dot survives.\n")
    return message


async def _send(server: LocalServer, *, auth: bool) -> SMTP:
    options: dict[str, Any] = {"username": "demo", "password": server.users["demo"]} if auth else {}
    async with SMTP(**server.client_options(), timeout=10, **options) as client:
        refused, reply = await client.send_message(_message())
        print(f"sent: {reply} (refused: {refused or 'none'})")
    return client


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smtp_nb", description=__doc__)
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument("--plain", action="store_true", help="no TLS (default: STARTTLS with a generated certificate)")
    tls.add_argument("--tls", action="store_true", help="TLS from the first byte, like port 465")
    parser.add_argument("--no-auth", action="store_true", help="do not log in (default: log in as the demo user)")
    args = parser.parse_args(argv)

    auth = not args.no_auth
    server = LocalServer(starttls=not (args.plain or args.tls), tls=args.tls, auth=auth, users=demo_users())
    with server:
        features = ", ".join(f for f, on in (("STARTTLS", server.starttls), ("TLS", server.tls), ("AUTH", auth)) if on)
        print(f"embedded SMTP server on {server.host}:{server.port} ({features or 'plain'})")
        client = asyncio.run(_send(server, auth=auth))
        print("\n--- the conversation (client >, server <, events *) ---")
        for line in client.transcript.lines():
            print(line)
        (received,) = server.messages
        print("\n--- what the server received ---")
        print(f"envelope: from {received.mail_from} to {', '.join(received.rcpt_tos)} (TLS: {received.tls})")
        print(received.data.decode("utf-8", "replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
