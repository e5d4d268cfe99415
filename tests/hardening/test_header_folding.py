"""Merge messages on the wire: headers read back exactly as they were rendered."""

from __future__ import annotations

import email
import email.policy

from smtp_nb.mailmerge.wire import Rendered


def parse(data: bytes) -> email.message.EmailMessage:
    """The message as a parser reads it; headers as UTF-8, for SMTPUTF8 mailboxes (RFC 6532)."""
    return email.message_from_string(data.decode("utf-8"), policy=email.policy.default)  # type: ignore[return-value]


def test_display_name_with_a_backslash_beside_an_smtputf8_mailbox():
    r"""Beside a non-ASCII mailbox the name goes raw; unquoted, '\' made a parser read the mailbox as '"\\"'."""
    pairs = [("Ada \\ Lovelace", "jürgen@müller.example"), ("\\", "ada@example.com")]
    rendered = Rendered(
        headers=[("From", "x"), ("To", "x")], addresses={"from": [("", "a@example.com")], "to": pairs}, text="x\n"
    )
    to = parse(rendered.to_bytes())["To"]
    assert [(a.display_name, a.addr_spec) for a in to.addresses] == pairs
