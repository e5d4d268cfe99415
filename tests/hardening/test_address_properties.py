"""Address validation, for any text: what is accepted is safe to put on a command line, and stays itself.

``parse_address`` decides what goes between the angle brackets of MAIL and
RCPT. Whatever it accepts must hold no control character or line separator
(anywhere) and no whitespace outside a quoted local part, and must come
back unchanged through ``quote_address``; every well-formed address, in
any of the forms a user writes, must be accepted as its mailbox.
"""

from __future__ import annotations

import pytest

from smtp_nb.client.addresses import parse_address


@pytest.mark.parametrize(
    "text",
    [
        "a\x85b@example.com",  # NEL, a C1 control: a line break to Python's str.splitlines()
        "a\u2028b@example.com",  # LINE SEPARATOR
        '"a\u2029b"@example.com',  # PARAGRAPH SEPARATOR, even quoted
        "a\xa0b@example.com",  # NO-BREAK SPACE outside quotes
        "ab@exa\u3000mple.com",  # IDEOGRAPHIC SPACE in the domain
        "ab@example.com\u2029",
    ],
)
def test_unicode_controls_separators_and_spaces_are_refused(text):
    with pytest.raises(ValueError, match="invalid email address"):
        parse_address(text)
