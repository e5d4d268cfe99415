"""merge(): validation before anything leaves, preview by default, sending once each, and the journal."""

import asyncio
import collections
import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
from typing import Any

import pandas
import pytest

import smtp_nb
from smtp_nb.mailmerge import (
    Journal,
    MergePreview,
    MergeResult,
    MergeValidationError,
    TemplateChanged,
    TemplateError,
)
from smtp_nb.mailmerge.merge import rate
from smtp_nb.mailmerge.progress import done
from smtp_nb.server import InboxHandler, LocalServer
from tests.conftest import RuleHandler

TEMPLATE = """From: Course Office <office@example.com>
To: {{ email | mailbox(name) }}
Subject: Your grade, {{ name }}

Dear {{ name }},
your grade is {{ grade }}.
"""


def people(count: int) -> list[dict[str, Any]]:
    return [
        {"id": i, "name": f"Student {i}", "email": f"s{i}@example.com", "grade": "ABC"[i % 3]} for i in range(count)
    ]


def deliveries(server: LocalServer) -> collections.Counter[str]:
    return collections.Counter(r for m in server.messages for r in m.rcpt_tos)


def options(server: LocalServer, tmp_path: Any, **extra: Any) -> dict[str, Any]:
    return {
        "smtp": {**server.client_options(), "timeout": 10},
        "journal": tmp_path / "journal.sqlite",
        "progress": False,
        "retry_delay": 0.01,
        **extra,
    }


async def test_preview_sends_nothing_and_shows_the_first_messages(server, tmp_path):
    result = await smtp_nb.merge(TEMPLATE, people(5), **options(server, tmp_path))
    assert isinstance(result, MergePreview)
    assert (result.rows, result.recipients, result.to_send) == (5, 5, 5)
    assert [key for _, key, *_ in result.messages] == ["s0@example.com", "s1@example.com", "s2@example.com"]
    text = repr(result)
    assert "Nothing was sent" in text and "Subject: Your grade, Student 1" in text and "your grade is B." in text
    assert "<iframe" not in result._repr_html_() and "Your grade, Student 2" in result._repr_html_()
    assert not server.messages


async def test_preview_over_a_connection_checks_size_and_sends_no_mail():
    with LocalServer(handler_class=RuleHandler, data_size_limit=300) as server:
        server.rules = {}
        client = smtp_nb.SMTP(**server.client_options())
        await client.connect()
        rows = people(3)
        rows[1]["grade"] = "x" * 500
        with pytest.raises(MergeValidationError) as info:
            await smtp_nb.merge(TEMPLATE, rows, client=client, journal=":memory:", progress=False)
        assert [(p.row, p.problem) for p in info.value.problems] == [
            (2, info.value.problems[0].problem)
        ] and "the server accepts at most 300" in info.value.problems[0].problem
        await client.quit()
        sent = [e.text for e in client.transcript if e.direction == ">"]
    assert not any(line.startswith("MAIL") for line in sent)


async def test_send_delivers_each_row_once_with_its_own_content(server, tmp_path):
    result = await smtp_nb.merge(TEMPLATE, people(12), send=True, **options(server, tmp_path))
    assert isinstance(result, MergeResult)
    assert result.counts["accepted"] == 12 and result.sent == 12
    assert deliveries(server) == {f"s{i}@example.com": 1 for i in range(12)}
    by_recipient = {m.rcpt_tos[0]: m.message for m in server.messages}
    assert by_recipient["s7@example.com"]["Subject"] == "Your grade, Student 7"
    assert "your grade is B." in by_recipient["s7@example.com"].get_content()
    assert by_recipient["s7@example.com"]["Message-ID"].endswith(".merge@example.com>")
    frame = result.to_frame()
    assert list(frame.columns) == ["row", "key", "recipients", "status", "code", "message", "message_id", "attempts"]
    assert set(frame["status"]) == {"accepted"} and list(frame["row"]) == list(range(1, 13))
    assert str(tmp_path / "journal.sqlite") in result.summary()
    html = result._repr_html_()
    assert "#d9f2d9" in html and "Student" not in html  # status colours; row data stays out of the table


async def test_rows_checked_up_front_are_sent_as_checked_and_rows_past_the_memory_budget_are_rendered_again(
    server, tmp_path, monkeypatch
):
    """Rendering once for the rows kept from the check, again only past ``_KEPT_BYTES``; the mail is the same."""
    from smtp_nb.mailmerge.template import MergeTemplate

    merge_module = sys.modules["smtp_nb.mailmerge.merge"]  # the package's ``merge`` is the function
    rendered = collections.Counter[int]()
    render = MergeTemplate.render

    def counted(self, row, number):
        rendered[number] += 1
        return render(self, row, number)

    monkeypatch.setattr(MergeTemplate, "render", counted)
    monkeypatch.setattr(merge_module, "_KEPT_BYTES", 4 * (merge_module._KEPT_OVERHEAD + 60))  # about four rows
    result = await smtp_nb.merge(TEMPLATE, people(10), send=True, **options(server, tmp_path))
    assert result.counts["accepted"] == 10 and deliveries(server) == {f"s{i}@example.com": 1 for i in range(10)}
    kept = [n for n, times in rendered.items() if times == 1]
    assert kept == [1, 2, 3, 4] and all(rendered[n] == 2 for n in range(5, 11))
    by_recipient = {m.rcpt_tos[0]: m.message for m in server.messages}
    for i in (0, 9):  # one kept row, one rendered again: the same message either way
        assert by_recipient[f"s{i}@example.com"]["Subject"] == f"Your grade, Student {i}"
        assert f"your grade is {'ABC'[i % 3]}." in by_recipient[f"s{i}@example.com"].get_content()


async def test_rerun_skips_accepted_rows(server, tmp_path):
    await smtp_nb.merge(TEMPLATE, people(5), send=True, **options(server, tmp_path))
    again = await smtp_nb.merge(TEMPLATE, people(8), send=True, **options(server, tmp_path))
    assert again.counts["skipped"] == 5 and again.counts["accepted"] == 3
    assert deliveries(server) == {f"s{i}@example.com": 1 for i in range(8)}


@pytest.mark.parametrize("form", ["dataframe", "csv", "generator"])
async def test_row_sources(server, tmp_path, form):
    rows: Any = people(4)
    if form == "dataframe":
        rows = pandas.DataFrame(rows)
        rows.loc[2, "grade"] = None  # an empty cell: NaN in pandas
    elif form == "csv":
        path = tmp_path / "people.csv"
        pandas.DataFrame(rows).to_csv(path, index=False)
        rows = str(path)
    else:
        rows = (row for row in people(4))
    if form == "dataframe":
        with pytest.raises(MergeValidationError, match="row 3, grade: is empty"):
            await smtp_nb.merge(TEMPLATE, rows, send=True, **options(server, tmp_path))
        assert not server.messages
        rows.loc[2, "grade"] = "C"
    result = await smtp_nb.merge(TEMPLATE, rows, send=True, key="id", **options(server, tmp_path))
    assert result.counts["accepted"] == 4
    assert sorted(r["key"] for r in result.rows()) == ["0", "1", "2", "3"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda rows: rows[5].pop("grade"), "row 6, grade: no such column in this row"),
        (lambda rows: rows[3].update(name="Eve\r\nBcc: x@example.com"), "row 4, name: holds a line break"),
        (lambda rows: rows[2].update(email=" "), "row 3, email: is empty"),
        (lambda rows: rows[7].update(email="s1@example.com"), "row 8, To: duplicate key 's1@example.com' (also row 2)"),
    ],
)
async def test_bad_rows_stop_everything_before_sending(server, tmp_path, change, expected):
    rows = people(10)
    change(rows)
    with pytest.raises(MergeValidationError) as info:
        await smtp_nb.merge(TEMPLATE, rows, send=True, **options(server, tmp_path))
    assert any(str(p).startswith(expected) for p in info.value.problems), info.value.problems
    assert "nothing was sent" in str(info.value)
    assert "<table" in info.value._repr_html_()
    assert not server.messages


async def test_template_syntax_error_shows_the_line(server, tmp_path):
    with pytest.raises(TemplateError, match="line 5: unexpected '}'"):
        await smtp_nb.merge(
            TEMPLATE.replace("Dear {{ name }}", "Dear {{ name }"), people(2), **options(server, tmp_path)
        )


async def test_refused_recipient_is_recorded_and_the_merge_goes_on(rule_server, tmp_path):
    rule_server.rules["RCPT"] = {"s3@example.com": "550 5.1.1 no such user"}
    result = await smtp_nb.merge(TEMPLATE, people(6), send=True, **options(rule_server, tmp_path))
    assert (result.counts["accepted"], result.counts["refused"]) == (5, 1)
    refused = [r for r in result.rows() if r["status"] == "refused"]
    assert [(r["key"], r["code"], r["attempts"]) for r in refused] == [("s3@example.com", 550, 1)]
    assert result.failed() == [people(6)[3]]
    assert "s3@example.com" not in deliveries(rule_server)


async def test_greylisting_is_retried_with_backoff(rule_server, tmp_path):
    rule_server.rules["GREYLIST"] = {"s1@example.com", "s4@example.com"}
    result = await smtp_nb.merge(TEMPLATE, people(6), send=True, **options(rule_server, tmp_path))
    assert result.counts["accepted"] == 6 and result.counts["retried"] == 2
    attempts = {r["key"]: r["attempts"] for r in result.rows()}
    assert attempts["s1@example.com"] == 2 and attempts["s0@example.com"] == 1
    assert deliveries(rule_server) == {f"s{i}@example.com": 1 for i in range(6)}


async def test_stop_after_failures_and_limit(rule_server, tmp_path):
    rule_server.rules["RCPT"] = {f"s{i}@example.com": "550 no" for i in (1, 2)}
    result = await smtp_nb.merge(
        TEMPLATE, people(20), send=True, stop_after_failures=2, **options(rule_server, tmp_path)
    )
    assert "2 rows failed" in result.stopped
    assert result.counts["accepted"] < 18
    limited = await smtp_nb.merge(
        TEMPLATE, people(20), send=True, limit=3, **options(rule_server, tmp_path, journal=":memory:")
    )
    assert limited.counts["accepted"] + limited.counts["refused"] == 3


class DropAfterSeventh(InboxHandler):
    """Accepts message 7, then drops the connection when the next MAIL arrives, without answering it."""

    dropped = False

    async def handle_MAIL(self, smtp, session, envelope, address, mail_options):
        if len(self.server.messages) == 7 and not self.dropped:
            self.dropped = True
            smtp.transport.abort()
            return "421 never seen: the connection is gone"
        envelope.mail_from, envelope.mail_options = address, mail_options
        return "250 OK"


@pytest.mark.parametrize("window", [1, 8])
async def test_connection_dropped_after_message_7_reconnects_and_completes(tmp_path, window):
    # With a window the next row's MAIL, RCPT and DATA ride with message 7's data; none is answered,
    # so that row failed before its data went out and is sent again on a new connection.
    with LocalServer(handler_class=DropAfterSeventh) as server:
        result = await smtp_nb.merge(TEMPLATE, people(20), send=True, window=window, **options(server, tmp_path))
        assert result.counts["accepted"] == 20 and not result.counts["unknown"]
        assert deliveries(server) == {f"s{i}@example.com": 1 for i in range(20)}
        assert len({m.peer for m in server.messages}) == 2  # one reconnection


class CloseAfterAnswering354(InboxHandler):
    """Message 8 gets its 354, then the connection closes before the server's verdict on the data."""

    dropped = False

    async def handle_DATA(self, smtp, session, envelope):
        if len(self.server.messages) == 7 and not self.dropped:
            self.dropped = True
            smtp.transport.abort()
            return "250 never seen"
        return await super().handle_DATA(smtp, session, envelope)


async def test_a_row_whose_data_went_out_without_a_verdict_is_unknown_and_never_resent(tmp_path):
    with LocalServer(handler_class=CloseAfterAnswering354) as server:
        result = await smtp_nb.merge(TEMPLATE, people(10), send=True, window=8, **options(server, tmp_path))
        assert result.counts["unknown"] == 1 and result.counts["accepted"] == 9
        assert "s7@example.com" not in deliveries(server)  # this server lost it; another might have queued it
        again = await smtp_nb.merge(TEMPLATE, people(10), send=True, window=8, **options(server, tmp_path))
        assert again.counts["unknown"] == 1 and not again.counts["accepted"]  # only --resend-unknown sends it


async def test_rate_limit_is_obeyed(server, tmp_path):
    result = await smtp_nb.merge(TEMPLATE, people(8), send=True, rate="20/s", **options(server, tmp_path))
    assert result.counts["accepted"] == 8
    times = sorted(m.received for m in server.messages)
    # 8 messages at 20 per second cannot span less than 7 intervals of 50 ms (server clock, lower bound only)
    assert times[-1] - times[0] >= 7 * 0.05 * 0.9


async def test_concurrency_opens_more_connections(server, tmp_path):
    result = await smtp_nb.merge(TEMPLATE, people(40), send=True, concurrency=4, **options(server, tmp_path))
    assert result.counts["accepted"] == 40
    assert deliveries(server) == {f"s{i}@example.com": 1 for i in range(40)}
    assert len({m.peer for m in server.messages}) == 4


async def test_changed_template_needs_a_decision(server, tmp_path):
    await smtp_nb.merge(TEMPLATE, people(3), send=True, **options(server, tmp_path))
    changed = TEMPLATE.replace("Dear", "Hello")
    with pytest.raises(TemplateChanged, match=r"--campaign NEW.*--continue"):
        await smtp_nb.merge(changed, people(5), send=True, **options(server, tmp_path))
    assert len(server.messages) == 3
    continued = await smtp_nb.merge(changed, people(5), send=True, continue_changed=True, **options(server, tmp_path))
    assert (continued.counts["skipped"], continued.counts["accepted"]) == (3, 2)
    fresh = await smtp_nb.merge(changed, people(5), send=True, campaign="second", **options(server, tmp_path))
    assert fresh.counts["accepted"] == 5
    assert deliveries(server) == {**{f"s{i}@example.com": 2 for i in range(5)}}


async def test_unknown_outcome_is_reported_not_resent(server, tmp_path):
    journal = Journal(tmp_path / "journal.sqlite")
    run, _, _ = journal.acquire("default", smtp_nb.mailmerge.MergeTemplate(TEMPLATE).fingerprint)
    journal.claim(
        "default", "s1@example.com", row=2, recipients=["s1@example.com"], message_id="<x>", fingerprint="", run=run
    )
    journal.close()  # as if the process had died with row 2 on the wire
    result = await smtp_nb.merge(TEMPLATE, people(3), send=True, **options(server, tmp_path))
    assert result.died == ["s1@example.com"] and "unknown outcome" in result.summary()
    assert deliveries(server) == {"s0@example.com": 1, "s2@example.com": 1}
    again = await smtp_nb.merge(TEMPLATE, people(3), send=True, resend_unknown=True, **options(server, tmp_path))
    assert again.counts["accepted"] == 1 and deliveries(server)["s1@example.com"] == 1


def test_merge_sync_inside_a_running_loop(server, tmp_path):
    async def cell():
        return smtp_nb.merge_sync(TEMPLATE, people(2), send=True, **options(server, tmp_path))

    assert asyncio.run(cell()).counts["accepted"] == 2


_CHILD = textwrap.dedent(
    """
    import json, sys
    import smtp_nb
    template, rows, options = json.loads(sys.argv[1])
    smtp_nb.merge_sync(template, rows, send=True, progress=False, rate="50/s", **options)
    """
)


def test_killed_mid_merge_then_rerun_sends_nothing_twice(server, tmp_path):
    rows = people(30)
    journal = str(tmp_path / "journal.sqlite")
    child_options = {"smtp": server.client_options(), "journal": journal}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps([TEMPLATE, rows, child_options])], env=env)
    try:
        assert server.wait_for_messages(8, timeout=60), "the merge did not start sending"
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(30)
    assert 8 <= len(server.messages) < 30
    result = smtp_nb.merge_sync(
        TEMPLATE, rows, send=True, progress=False, smtp=server.client_options(), journal=journal
    )
    counts = deliveries(server)
    unknown = {r["key"] for r in result.rows() if r["status"] == "unknown"}
    assert len(unknown) <= 2  # window 1 on a DATA server: the row on its way and the next, claimed
    assert all(n == 1 for n in counts.values()), counts
    for row in rows:
        assert counts[row["email"]] == 1 or row["email"] in unknown
    assert result.counts["skipped"] + result.counts["accepted"] + len(unknown) == 30


async def test_preview_shows_the_html_part_in_a_sandboxed_frame(server, tmp_path):
    html = "<p>Dear {{ name }} <script>alert(1)</script></p>"
    result = await smtp_nb.merge(TEMPLATE, people(1), html=html, **options(server, tmp_path))
    page = result._repr_html_()
    assert '<iframe sandbox=""' in page
    assert "script" not in page and "Dear Student 0" in page  # sanitised away, and framed anyway


async def test_progress_reports_counts_and_rate(rule_server, tmp_path):
    rule_server.rules["RCPT"] = {"s2@example.com": "550 no"}
    reports = []
    result = await smtp_nb.merge(
        TEMPLATE, people(5), send=True, **{**options(rule_server, tmp_path), "progress": reports.append}
    )
    assert result.counts["accepted"] == 4
    last = reports[-1]
    assert (last["accepted"], last["refused"], last["in_flight"]) == (4, 1, 0)
    assert [r["accepted"] + r["refused"] for r in reports] == sorted(r["accepted"] + r["refused"] for r in reports)
    assert rate(last).endswith(" msg/s") and last["elapsed_ms"] >= 0


async def test_progress_of_a_resume_counts_only_this_runs_rows(tmp_path):
    """A row an earlier run left unknown is not resent, and not counted as done of this run's total."""
    from tests.mailmerge.test_exactly_once import ROWS, TEMPLATE, faulty_server

    server, _ = faulty_server("dot", pipelining=False)
    with server:
        opts = {"smtp": server.options(timeout=5), "journal": tmp_path / "j.sqlite", "retry_delay": 0.01, "send": True}
        first = await smtp_nb.merge(TEMPLATE, ROWS[:12], **opts, progress=False)
        assert first.counts["unknown"] == 1
        reports = []
        await smtp_nb.merge(TEMPLATE, ROWS, **opts, progress=reports.append)
    assert reports and all(done(r) <= r["total"] for r in reports), [(done(r), r["total"]) for r in reports]
    assert done(reports[-1]) == reports[-1]["total"] == len(ROWS) - 12


async def test_validation_errors_read_as_a_table_in_a_terminal(server, tmp_path):
    from IPython.lib.pretty import pretty

    rows = people(4)
    rows[1].pop("grade")
    rows[3]["email"] = "bad address"
    with pytest.raises(MergeValidationError) as info:
        await smtp_nb.merge(TEMPLATE, rows, **options(server, tmp_path))
    text = pretty(info.value)
    assert text.splitlines()[0] == "2 problem(s) in 2 row(s); nothing was sent."
    assert "2    grade   no such column in this row" in text and "4    email   'bad address' is not a valid" in text


def test_the_readmes_offline_rehearsal_runs_as_written(tmp_path, monkeypatch, capsys):
    """The README's merge example, rehearsed on the embedded server: what a newcomer without a server can try."""
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    first = readme.split("## Mail merge", 1)[1].split("```python\n", 1)[1].split("smtp = smtp_nb.SMTP(", 1)[0]
    offline = readme.split("<!-- merge-offline -->\n```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)  # the journal goes to the current folder
    exec(compile(first + offline, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("Merge 'default': 2 rehearsed on the embedded server. Journal: ")
    assert printed[1] == "Your grade, Ada Lovelace"
    assert (tmp_path / "smtp_nb-journal.sqlite").exists()
