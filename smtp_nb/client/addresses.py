"""Mailbox and command-argument validation of our own (RFC 5321 / RFC 6531).

``email.utils.parseaddr`` changed strictness between Python patch releases and
lets injected text through on older ones, so envelope addresses are checked
here, with one error message per problem, before any byte is sent.
"""

from __future__ import annotations

import functools
import re

__all__ = ["check_argument", "needs_smtputf8", "parse_address", "quote_address"]

# C0 controls and DEL: CR, LF and NUL in particular would let an argument end a
# command line and start another one (command injection). C1 controls and the
# Unicode line and paragraph separators too: NEL (U+0085), U+2028 and U+2029
# end a line for str.splitlines() and for other software downstream.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# atext of RFC 5322, plus any non-ASCII character (RFC 6531) and '.', so that
# legacy local parts with doubled or trailing dots are still deliverable.
# These three and the literal's are for addresses _SIMPLE does not take; compiling the ranges up to
# U+10FFFF costs about 45 ms, so ``_slow()`` compiles them on first use, not at import.
_SLOW = {
    "dot_string": r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.\u0080-\U0010ffff]+",
    "quoted": r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010ffff]|\\[\x20-\x7e])*"',
    "label": r"[A-Za-z0-9_\u0080-\U0010ffff](?:[A-Za-z0-9_\-\u0080-\U0010ffff]*[A-Za-z0-9_\u0080-\U0010ffff])?",
    "general_literal": r"[A-Za-z0-9-]*[A-Za-z0-9]:[\x21-\x5a\x5e-\x7e]+",
}
_MAX_LENGTH = 998
# The common case, checked in one step: a dot-atom of ASCII atext, '@', and a
# domain of letter-digit-hyphen labels. Everything it accepts the full check
# below accepts too; anything else takes the full check and its explanations.
_SIMPLE = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)


@functools.cache
def _slow(name: str) -> re.Pattern[str]:
    return re.compile(_SLOW[name])


def _problem(text: str, reason: str) -> ValueError:
    return ValueError(f"invalid email address {text!r}: {reason}")


def check_argument(value: str, what: str) -> str:
    """Return ``value`` if it can go on a command line; raise ``ValueError`` naming ``what`` if not."""
    bad = _CONTROL.search(value)
    if bad:
        raise ValueError(
            f"{what} {value!r} contains the control character {bad.group()!r}; "
            "CR, LF, NUL and other control characters are never sent, because "
            "they could end the command and start another one"
        )
    return value


def _check_domain(text: str, domain: str) -> None:
    if not domain:
        raise _problem(text, "the domain after '@' is empty")
    if domain.startswith("[") and domain.endswith("]"):
        import ipaddress  # only for address literals: not worth its import time for every session

        literal = domain[1:-1]
        if literal.lower().startswith("ipv6:"):
            try:
                ipaddress.IPv6Address(literal[5:])
            except ValueError:
                raise _problem(text, f"{domain} is not a valid IPv6 address literal") from None
            return
        try:
            ipaddress.IPv4Address(literal)
        except ValueError:
            if not _slow("general_literal").fullmatch(literal):
                raise _problem(text, f"{domain} is not a valid address literal") from None
        return
    for label in domain.split("."):
        if not label:
            raise _problem(text, f"the domain {domain!r} has an empty label (two dots, or a dot at an end)")
        if not _slow("label").fullmatch(label):
            raise _problem(
                text,
                f"the domain {domain!r} may only hold letters, digits and '-' "
                f"(not at the start or end of a label); {label!r} does not fit",
            )
        space = next((c for c in label if c.isspace()), None)  # non-ASCII spaces pass _LABEL
        if space is not None:
            raise _problem(text, f"the domain {domain!r} holds the space character {space!r}")


def _angle_start(text: str) -> int:
    """Where the ``<`` that opens the address ending ``text`` is: the last one outside a quoted string.

    ``<"a<b"@example.com>`` is a valid address (a quoted local part may hold '<').
    """
    start, quoted, escaped = -1, False, False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "<" and not quoted:
            start = i
    return start if start >= 0 else text.rindex("<")


def parse_address(text: str, *, allow_empty: bool = False) -> str:
    """The bare mailbox (``local@domain``) of ``text``, or ``ValueError`` saying what is wrong.

    ``text`` may be a bare mailbox, ``<mailbox>`` or ``Display Name <mailbox>``.
    ``allow_empty`` admits the null reverse-path ``<>`` (for MAIL FROM of bounces).
    """
    if not isinstance(text, str):
        raise TypeError(f"an email address must be a str, not {type(text).__name__}")
    if len(text) <= _MAX_LENGTH and _SIMPLE.fullmatch(text):
        return text
    bad = _CONTROL.search(text)
    if bad:
        raise _problem(
            text,
            f"it contains the control character {bad.group()!r}; CR, LF and NUL "
            "are refused because they could inject commands or headers",
        )
    # Only RFC 5322's whitespace (CR and LF were refused above): a reader of the header keeps a
    # NO-BREAK SPACE as part of the address, so stripping it would send to another one.
    stripped = text.strip(" \t")
    if stripped.endswith(">") and "<" in stripped:
        mailbox = stripped[_angle_start(stripped) + 1 : -1].strip(" \t")
    else:
        mailbox = stripped
    if not mailbox:
        if allow_empty:
            return ""
        raise _problem(text, "it is empty")
    if len(mailbox) > _MAX_LENGTH:
        raise _problem(text, f"it is {len(mailbox)} characters long (at most {_MAX_LENGTH})")
    if mailbox.startswith("@"):
        raise _problem(text, "source routes (<@relay:user@domain>) are not supported; give the mailbox alone")

    domain: str | None
    quoted = _slow("quoted").match(mailbox) if mailbox.startswith('"') else None
    if quoted:
        local, rest = quoted.group(), mailbox[quoted.end() :]
        if rest and not rest.startswith("@"):
            raise _problem(text, "text follows the quoted local part without an '@'")
        domain = rest[1:] if rest else None
    else:
        local, at, domain_part = mailbox.rpartition("@")
        if at:
            domain = domain_part
        else:
            local, domain = mailbox, None
            if local.lower() != "postmaster":  # said first: "(at)" in 'edsger(at)example' is not the problem
                raise _problem(text, "it has no '@domain' (only <postmaster> may go without a domain)")
        if not local:
            raise _problem(text, "the local part before '@' is empty")
        if not _slow("dot_string").fullmatch(local) or any(c.isspace() for c in local):
            offending = sorted({c for c in local if not _slow("dot_string").fullmatch(c) or c.isspace()})
            if offending == ["@"]:
                raise _problem(text, "it has more than one '@' (an '@' in the local part needs quotes)")
            raise _problem(
                text,
                f"the local part {local!r} holds {''.join(offending)!r}, which is "
                "only allowed inside a quoted local part",
            )
    if domain is None:
        if local.lower() != "postmaster":
            raise _problem(text, "it has no '@domain' (only <postmaster> may go without a domain)")
        return mailbox
    _check_domain(text, domain)
    return mailbox


def quote_address(text: str, *, allow_empty: bool = False) -> str:
    """``<mailbox>`` of ``text`` as it goes on a MAIL or RCPT command."""
    return f"<{parse_address(text, allow_empty=allow_empty)}>"


def needs_smtputf8(*addresses: str) -> bool:
    """True if any address has non-ASCII characters (the server must offer SMTPUTF8)."""
    return not all(address.isascii() for address in addresses)
