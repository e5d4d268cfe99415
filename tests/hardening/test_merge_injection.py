"""A merge row cannot add a header or a recipient, whatever its fields hold."""

from __future__ import annotations

import pytest

from smtp_nb.mailmerge import MergeTemplate


@pytest.mark.parametrize("address", ["jürgen@müller.example", "用户@例子.广告"])
def test_the_mailbox_filter_takes_an_internationalized_address(address):
    """formataddr() refuses non-ASCII addresses with UnicodeEncodeError, which crashed render() (and the merge)."""
    template = "From: a@example.com\nTo: {{ email | mailbox(name) }}\n\nx"
    rendered = MergeTemplate(template).render({"email": address, "name": "Jürgen, Jr."}, 1)
    assert rendered.recipients == [address]
    assert rendered.addresses["to"] == [("Jürgen, Jr.", address)]
