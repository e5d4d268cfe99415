"""The sans-IO core: reply parsing, command encoding, line endings, dot-stuffing, EHLO."""

import pytest

from smtp_nb import SMTPProtocolError, SMTPResponse
from smtp_nb.client.protocol import (
    MAX_LINE_LENGTH,
    MAX_REPLY_LENGTH,
    ReplyParser,
    dot_stuff,
    encode_command,
    normalize_line_endings,
    parse_ehlo,
)


def test_single_line_reply():
    assert ReplyParser().feed(b"250 2.0.0 Ok: queued\r\n") == [SMTPResponse(250, "2.0.0 Ok: queued")]


def test_multiline_reply_joined_with_newlines():
    data = b"250-mx.example.com\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"
    assert ReplyParser().feed(data) == [SMTPResponse(250, "mx.example.com\nPIPELINING\nSIZE 1000")]


def test_reply_split_across_reads_waits_for_the_end():
    parser = ReplyParser()
    assert parser.feed(b"250-a\r\n25") == []
    assert parser.has_partial
    assert parser.feed(b"0 b\r\n") == [SMTPResponse(250, "a\nb")]
    assert not parser.has_partial


def test_several_replies_in_one_read_come_out_in_order():
    replies = ReplyParser().feed(b"250 ok\r\n550 no such user\r\n354 go\r\n")
    assert [r.code for r in replies] == [250, 550, 354]


def test_bare_lf_and_code_only_lines_are_accepted():
    assert ReplyParser().feed(b"250\n") == [SMTPResponse(250, "")]
    # smtp-sink ends its EHLO reply with an empty "250 " line
    assert ReplyParser().feed(b"250-sink\r\n250-PIPELINING\r\n250 \r\n") == [SMTPResponse(250, "sink\nPIPELINING\n")]


@pytest.mark.parametrize(
    "garbage", [b"hello\r\n", b"25\r\n", b"2500 x\r\n", b"650 no\r\n", b"250x\r\n", b"\x00\x01\r\n"]
)
def test_garbage_is_a_protocol_error(garbage):
    with pytest.raises(SMTPProtocolError) as info:
        ReplyParser().feed(garbage)
    assert info.value.code == -1
    assert "not an SMTP reply" in info.value.message


def test_overlong_line_is_refused_before_its_end_arrives():
    parser = ReplyParser()
    with pytest.raises(SMTPProtocolError, match="longer than"):
        parser.feed(b"250 " + b"x" * MAX_LINE_LENGTH)


def test_endless_multiline_reply_is_refused():
    parser = ReplyParser()
    with pytest.raises(SMTPProtocolError, match="multi-line reply longer"):
        for _ in range(MAX_REPLY_LENGTH // 10 + 10):
            parser.feed(b"250-xxxxxx\r\n")


def test_non_utf8_reply_text_is_kept_readable():
    (reply,) = ReplyParser().feed(b"250 caf\xe9\r\n")
    assert reply.message == "caf\\xe9"


def test_enhanced_status_and_classes():
    assert SMTPResponse(250, "2.1.5 Ok").enhanced_status == "2.1.5"
    assert SMTPResponse(250, "Ok").enhanced_status is None
    assert SMTPResponse(451, "4.7.1 try later").is_transient
    assert SMTPResponse(550, "5.1.1 unknown").is_permanent
    assert str(SMTPResponse(250, "Ok")) == "250 Ok"


@pytest.mark.parametrize("bad", [b"a\rb", b"a\nb", b"a\x00b", b"a\x7fb"])
def test_command_with_control_character_is_refused(bad):
    with pytest.raises(ValueError, match="control character"):
        encode_command(b"VRFY", bad)


def test_command_encoding():
    assert encode_command(b"MAIL", b"FROM:<a@b.c>", b"SIZE=10") == b"MAIL FROM:<a@b.c> SIZE=10\r\n"


@pytest.mark.parametrize(
    ("given", "wire"),
    [
        (b"a\nb", b"a\r\nb\r\n"),
        (b"a\rb\r\n", b"a\r\nb\r\n"),
        (b"a\r\nb\nc\rd", b"a\r\nb\r\nc\r\nd\r\n"),
        (b"a\r\n", b"a\r\n"),
        (b"", b"\r\n"),
    ],
)
def test_line_endings_become_crlf(given, wire):
    assert normalize_line_endings(given) == wire


def test_normalized_data_is_not_copied():
    data = b"Subject: x\r\n\r\nbody\r\n"
    assert normalize_line_endings(data) is data


def test_dot_stuffing_doubles_line_initial_dots_only():
    assert dot_stuff(b".a\r\nb.c\r\n..d\r\n.\r\n") == b"..a\r\nb.c\r\n...d\r\n..\r\n"


def test_ehlo_parsing():
    extensions, auth = parse_ehlo(
        "mx.example.com\nPIPELINING\nSIZE 35882577\nAUTH PLAIN LOGIN\nAUTH=CRAM-MD5\n8BITMIME\n"
    )
    assert extensions["pipelining"] == ""
    assert extensions["size"] == "35882577"
    assert "8bitmime" in extensions
    assert auth == ["plain", "login", "cram-md5"]
    assert "mx.example.com" not in extensions
