"""The direct serializer for text messages says exactly what the email package would say."""

import email
import email.policy
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from smtp_nb.mailmerge.wire import Attachment, Rendered, split_addresses


def parsed(data: bytes):
    return email.message_from_bytes(data, policy=email.policy.default)


def both_ways(rendered: Rendered, eight_bit: bool = True):
    direct = parsed(rendered.to_bytes(eight_bit=eight_bit))
    package = parsed(rendered._via_email_package(eight_bit))
    return direct, package


def _spaced(name: str) -> str:
    """A display name without its whitespace, which Python's reader does not keep exactly.

    Runs of spaces come back as one (folding whitespace), and a long word
    split into two encoded words comes back with a space between them —
    RFC 2047 section 6.2 says to ignore it, CPython's parser keeps it, for the
    email package's own output as for ours. Every other character must come
    back, in order; the exact names are checked in the tests above.
    """
    return re.sub(r"\s+", "", name)


def same(rendered, direct, package):
    """Addresses read back as given; subject and body as the email package writes them."""
    for name in ("from", "to"):
        read = [(_spaced(a.display_name), a.addr_spec) for a in direct[name].addresses]
        assert read == [(_spaced(n), a) for n, a in rendered.addresses[name]]
    assert str(direct["Subject"]) == str(package["Subject"])
    assert direct.get_content().replace("\r\n", "\n") == package.get_content().replace("\r\n", "\n")
    assert direct.get_content_type() == "text/plain"


def make(name: str, subject: str, body: str, extra_to: tuple[str, str] | None = None) -> Rendered:
    to = [(name, "one@example.com")] + ([extra_to] if extra_to else [])
    to_text = ", ".join(email.utils.formataddr(p) for p in to)
    return Rendered(
        headers=[
            ("From", "Office <office@example.com>"),
            ("To", to_text),
            ("Subject", subject),
            ("Bcc", "b@example.com"),
        ],
        addresses={"from": [("Office", "office@example.com")], "to": to, "bcc": [("", "b@example.com")]},
        text=body,
    )


def test_plain_ascii_message():
    rendered = make("Ada Lovelace", "Hello", "Dear Ada,\n.a dot line\n")
    data = rendered.to_bytes()
    assert b"Bcc" not in data and b"b@example.com" not in data
    assert b"Content-Transfer-Encoding: 7bit" in data
    same(rendered, *both_ways(rendered))


def test_non_ascii_names_subjects_and_bodies_both_encodings():
    rendered = make(
        "Zoë Müller, Jr.", "Grüße " * 20, "Liebe Zoë,\nschöne Grüße\n", ('Ren\u00e9 "R" O\'Neil', "r@example.com")
    )
    for eight_bit in (True, False):
        same(rendered, *both_ways(rendered, eight_bit))
    assert b"quoted-printable" in rendered.to_bytes(eight_bit=False)
    assert rendered.to_bytes(eight_bit=True).split(b"\r\n\r\n")[0].isascii()


@settings(max_examples=150, deadline=None)
@given(
    name=st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=40),
    subject=st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=120),
    body=st.text(st.characters(blacklist_categories=("Cs",)), max_size=400),
)
def test_any_text_round_trips_like_the_email_package(name, subject, body):
    subject = subject.strip() or "x"
    rendered = make(name.strip(), subject, body)
    same(rendered, *both_ways(rendered))


def test_address_splitting():
    assert split_addresses('"Doe, John" <j@example.com>, ann@example.com') == (
        ("Doe, John", "j@example.com"),
        ("", "ann@example.com"),
    )
    assert split_addresses("Team: a@example.com, b@example.com;") == (("", "a@example.com"), ("", "b@example.com"))
    assert split_addresses("=?utf-8?q?Zo=C3=AB?= <z@example.com>") == (("Zoë", "z@example.com"),)


def test_no_line_on_the_wire_is_longer_than_998_octets():
    """Only CR and LF end a line on the wire: a form feed or U+2028 inside a long line does not shorten it."""
    for body in ("a" * 600 + "\x0c" + "b" * 600, "a" * 600 + "\u2028" + "b" * 600, "é" * 600, "x" * 999):
        data = make("Ada", "Long", body).to_bytes()
        assert max(len(line) for line in data.split(b"\r\n")) <= 998, body[:20]
        assert parsed(data).get_content().rstrip("\r\n") == body
    assert b"7bit" in make("Ada", "Short", "x" * 998).to_bytes()  # at the limit: as written


@settings(max_examples=150, deadline=None)
@given(
    name=st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=40),
    subject=st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=200),
    body=st.text(st.characters(blacklist_categories=("Cs",)), max_size=2000),
    html=st.none() | st.text(st.characters(blacklist_categories=("Cs",)), max_size=2000),
    eight_bit=st.booleans(),
)
def test_the_size_bound_is_never_below_the_size_on_the_wire(name, subject, body, html, eight_bit):
    """The merge skips serializing a row whose bound is under the server's SIZE: the bound must hold."""
    rendered = make(name.strip(), subject.strip() or "x", body)
    rendered.html = html
    assert rendered.size_bound() >= rendered.estimated_size(eight_bit=eight_bit)


def test_the_size_bound_counts_attachments_in_base64(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 400)
    found = path.stat()
    rendered = make("Ada", "Data", "attached\n")
    rendered.attachments = [Attachment(str(path), "data.bin", found.st_size, found.st_mtime_ns)]
    assert len(rendered.to_bytes()) <= rendered.size_bound() < 2 * len(rendered.to_bytes())
