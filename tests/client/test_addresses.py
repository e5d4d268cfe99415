"""Address validation of our own: what goes on MAIL/RCPT, and a clear reason when it cannot."""

import pytest

from smtp_nb.client.addresses import check_argument, needs_smtputf8, parse_address, quote_address


@pytest.mark.parametrize(
    ("given", "mailbox"),
    [
        ("alice@example.com", "alice@example.com"),
        ("<alice@example.com>", "alice@example.com"),
        ("Alice Smith <alice@example.com>", "alice@example.com"),
        ('"Smith, Alice" <alice@example.com>', "alice@example.com"),
        ("  alice@example.com  ", "alice@example.com"),
        ("first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk"),
        ('"john doe"@example.com', '"john doe"@example.com'),
        ("user@[192.0.2.1]", "user@[192.0.2.1]"),
        ("user@[IPv6:2001:db8::1]", "user@[IPv6:2001:db8::1]"),
        ("Postmaster", "Postmaster"),
        ("jürgen@müller.example", "jürgen@müller.example"),
        ("root@localhost", "root@localhost"),
    ],
)
def test_valid_addresses(given, mailbox):
    assert parse_address(given) == mailbox


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("alice@example.com\r\nRCPT TO:<evil@example.com>", "control character"),
        ("alice@example.com\n", "control character"),
        ("ali\x00ce@example.com", "control character"),
        ("", "empty"),
        ("alice", "no '@domain'"),
        ("edsger(at)example", "no '@domain'"),  # the missing '@', not the '()' it holds instead
        ("alice@", "domain after '@' is empty"),
        ("@example.com", "source routes"),
        ("a b@example.com", "holds ' '"),
        ("alice@exa mple.com", "may only hold"),
        ("alice@example..com", "empty label"),
        ("alice@-example.com", "may only hold"),
        ("a@b@example.com", "more than one '@'"),
        ("alice@example.com> SIZE=1", "may only hold"),
        ("user@[300.1.1.1]", "not a valid address literal"),
        ("user@[IPv6:zz::1]", "not a valid IPv6"),
    ],
)
def test_invalid_addresses_say_why(given, reason):
    with pytest.raises(ValueError, match="invalid email address") as info:
        parse_address(given)
    assert reason in str(info.value)


def test_null_sender_only_when_allowed():
    assert parse_address("<>", allow_empty=True) == ""
    assert quote_address("", allow_empty=True) == "<>"
    with pytest.raises(ValueError):
        parse_address("<>")


def test_check_argument_refuses_control_characters():
    assert check_argument("mail.example.com", "HELO name") == "mail.example.com"
    with pytest.raises(ValueError, match=r"HELO name .* control character"):
        check_argument("host\r\nMAIL FROM:<x@y.z>", "HELO name")


def test_needs_smtputf8():
    assert not needs_smtputf8("a@example.com", "b@example.com")
    assert needs_smtputf8("a@example.com", "jürgen@example.com")
