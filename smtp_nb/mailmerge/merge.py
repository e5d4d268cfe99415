"""``merge()``: a template times rows → validated messages → sent once each, with a journal and a result table.

Nothing is sent until every row has been rendered and validated; then rows
are marked in the journal before their data goes out, sent over one or more
pipelined connections at the rate asked, retried on 4xx replies and dropped
connections (with exponential backoff), and recorded as they are answered.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from ..client.errors import SMTPException, SMTPResponseException
from ..client.smtp import SMTP
from ..client.sync import run_sync
from ..client.transaction import Delivery
from .journal import DEFAULT_JOURNAL, Journal
from .results import MergePreview, MergeResult, MergeValidationError
from .rows import RowSource
from .template import MergeTemplate, Problem, RowError

__all__ = ["merge", "merge_sync", "parse_rate"]

_MAX_PROBLEMS = 200
Progress = Callable[[dict[str, int]], None]


def parse_rate(rate: str | float | None) -> float | None:
    """Messages per second from ``30/min``, ``2/s``, ``500/h`` or a number; None for no limit."""
    if rate is None:
        return None
    if isinstance(rate, (int, float)):
        if rate <= 0:
            raise ValueError("rate must be positive")
        return float(rate)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*", rate)
    if not match:
        raise ValueError(f"rate {rate!r} is not like '30/min', '2/s' or '500/h'")
    per = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}[match[2]]
    return float(match[1]) / per


class _Pacer:
    """Spaces messages evenly at ``per_second`` across every connection."""

    def __init__(self, per_second: float | None) -> None:
        self.interval = 1 / per_second if per_second else 0.0
        self.next = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self.next > now:
            await asyncio.sleep(self.next - now)
        self.next = max(self.next, now) + self.interval


@dataclass
class _Item:
    """A row ready to send (or to send again)."""

    number: int
    key: str
    sender: str
    recipients: list[str]
    data: bytes
    message_id: str
    attempt: int = 0
    due: float = 0.0


@dataclass
class _Run:
    """The state shared by the connections of one sending run."""

    template: MergeTemplate
    source: RowSource
    journal: Journal
    campaign: str
    run: int
    key_column: str | None
    resend_unknown: bool
    limit: int | None
    retries: int
    retry_delay: float
    stop_after_failures: int | None
    pacer: _Pacer
    eight_bit: bool
    progress: Progress | None
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("accepted", "refused", "failed", "unknown", "skipped", "retried"), 0)
    )
    retry_queue: list[_Item] = field(default_factory=list)
    in_flight: int = 0
    new_rows: int = 0
    stopped: str | None = None
    exhausted: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self._rows = iter(self.source)
        self._lock = asyncio.Lock()

    # -- handing out rows ---------------------------------------------------------------

    def __aiter__(self) -> _Run:
        return self

    async def __anext__(self) -> tuple[str, list[str], bytes, _Item]:
        """The next row for a connection: a retry that is due, else a new row; StopAsyncIteration when none now."""
        async with self._lock:
            while True:
                if self.stopped:
                    raise StopAsyncIteration
                loop = asyncio.get_running_loop()
                if self.retry_queue and self.retry_queue[0].due <= loop.time():
                    item = self.retry_queue.pop(0)
                elif not self.exhausted and (self.limit is None or self.new_rows < self.limit):
                    found = self._next_new()
                    if found is None:
                        continue
                    item = found
                    self.new_rows += 1
                elif self.retry_queue:
                    await asyncio.sleep(max(0.0, self.retry_queue[0].due - loop.time()))
                    continue
                else:
                    raise StopAsyncIteration
                await self.pacer.wait()
                item.attempt = self.journal.mark_sending(
                    self.campaign,
                    item.key,
                    row=item.number,
                    recipients=item.recipients,
                    message_id=item.message_id,
                    fingerprint=self.template.fingerprint,
                    run=self.run,
                )
                self.in_flight += 1
                return item.sender, item.recipients, item.data, item

    def _next_new(self) -> _Item | None:
        """Render the next row that needs sending; None if this row is skipped, and mark exhaustion."""
        try:
            number, row = next(self._rows)
        except StopIteration:
            self.exhausted = True
            return None
        rendered = self.template.render(row, number)
        sender, recipients = rendered.sender, rendered.recipients
        key = _key(row, recipients, self.key_column)
        state = self.journal.state(self.campaign, key)
        if state == "accepted" or (state == "unknown" and not self.resend_unknown):
            self.counts["skipped" if state == "accepted" else "unknown"] += 1
            return None
        message_id = _message_id(self.campaign, key, self.template.fingerprint, sender)
        dated = rendered.with_headers(Message_ID=message_id, Date=email.utils.formatdate(localtime=True))
        return _Item(number, key, sender, recipients, dated.to_bytes(eight_bit=self.eight_bit), message_id)

    # -- taking answers ------------------------------------------------------------------

    def settle(self, delivery: Delivery) -> None:
        """Record one delivery; queue a retry when it may succeed later."""
        item: _Item = delivery.tag
        self.in_flight -= 1
        status, error = delivery.status, delivery.error
        if status == "accepted":
            assert delivery.data is not None
            self.journal.record(
                self.campaign, item.key, "accepted", code=delivery.data.code, reply=delivery.data.message
            )
            self.counts["accepted"] += 1
        elif status == "unknown":
            reply = f"unknown: the data was sent but no verdict came back ({error})"
            self.journal.record(self.campaign, item.key, "unknown", code=None, reply=reply)
            self.counts["unknown"] += 1
        else:
            code = error.code if isinstance(error, SMTPResponseException) else None
            if code is None and delivery.refused:
                code = next(iter(delivery.refused.values())).code
            reply = _describe(error)
            final_state = "refused" if status == "refused" else "failed"
            if delivery.transient and item.attempt <= self.retries:
                delay = self.retry_delay * 2 ** (item.attempt - 1)
                item.due = asyncio.get_running_loop().time() + delay
                self.retry_queue.append(item)
                self.retry_queue.sort(key=lambda i: i.due)
                self.counts["retried"] += 1
                self.journal.record(
                    self.campaign, item.key, "failed", code=code, reply=f"{reply} (retrying in {delay:g}s)"
                )
            else:
                self.journal.record(self.campaign, item.key, final_state, code=code, reply=reply)
                self.counts[final_state] += 1
                failures = self.counts["refused"] + self.counts["failed"]
                if self.stop_after_failures is not None and failures >= self.stop_after_failures and not self.stopped:
                    self.stopped = f"{failures} rows failed (--stop-after-failures {self.stop_after_failures})"
        if self.progress is not None:
            elapsed = int(1000 * (time.monotonic() - self.started))
            self.progress(dict(self.counts, in_flight=self.in_flight, elapsed_ms=elapsed))
        self.changed.set()

    @property
    def finished(self) -> bool:
        return bool(self.stopped) or (
            (self.exhausted or (self.limit is not None and self.new_rows >= self.limit))
            and not self.retry_queue
            and not self.in_flight
        )


def _describe(error: BaseException | None) -> str:
    if error is None:
        return ""
    if isinstance(error, SMTPResponseException):
        return f"{error.code} {error.message}"
    return f"{type(error).__name__}: {error}"


def _key(row: Mapping[str, Any], recipients: list[str], column: str | None) -> str:
    if column is None:
        return recipients[0].lower() if recipients else ""
    return str(row[column])


def _message_id(campaign: str, key: str, fingerprint: str, sender: str) -> str:
    """The same for every attempt of a row, so a receiver can tell a resend from a new message."""
    digest = hashlib.sha256(f"{campaign}\0{key}\0{fingerprint}".encode()).hexdigest()[:24]
    domain = sender.rpartition("@")[2] or "smtp-nb.invalid"
    return f"<{digest}.merge@{domain}>"


async def _worker(run: _Run, client: SMTP, owned: bool, reconnects: int) -> None:
    """One connection: send while there is work, reconnecting after a drop."""
    failures = 0
    try:
        while not run.finished:
            if not client.is_connected:
                try:
                    await client.connect()
                    failures = 0
                except (SMTPException, OSError) as exc:
                    failures += 1
                    if failures > reconnects:
                        if not run.stopped:
                            run.stopped = f"cannot reconnect to the server: {exc}"
                        run.changed.set()
                        return
                    await asyncio.sleep(run.retry_delay * 2 ** (failures - 1))
                    continue
            async for delivery in client.send_many(run):
                run.settle(delivery)
            if client.is_connected and not run.finished and not run.retry_queue:
                # Nothing to hand out now, but rows in flight elsewhere may come back for a retry.
                run.changed.clear()
                if not run.finished:
                    await run.changed.wait()
    finally:
        if owned and client.is_connected:
            try:
                await client.quit()
            except SMTPException:
                client.close()


def rate(counts: dict[str, int]) -> str:
    """Messages answered per second so far, for progress displays."""
    done = counts["accepted"] + counts["refused"] + counts["failed"] + counts["unknown"]
    seconds = counts.get("elapsed_ms", 0) / 1000
    return f"{done / seconds:.1f} msg/s" if seconds > 0 else "- msg/s"


def _default_progress(total: int) -> tuple[Progress | None, Callable[[], None]]:
    """A progress bar: tqdm.auto when installed (a widget in Jupyter), else a line on stderr."""
    if os.environ.get("TQDM_DISABLE") or total == 0:
        return None, lambda: None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        state = {"done": 0}

        def show(counts: dict[str, int]) -> None:
            done = counts["accepted"] + counts["refused"] + counts["failed"] + counts["unknown"]
            if done != state["done"]:
                state["done"] = done
                sys.stderr.write(
                    f"\rsent {counts['accepted']}/{total}, refused {counts['refused'] + counts['failed']}, "
                    f"retried {counts['retried']}, {rate(counts)}"
                )

        def end() -> None:
            sys.stderr.write("\n")

        return show, end
    bar = tqdm(total=total, unit="msg", desc="merge")

    def update(counts: dict[str, int]) -> None:
        done = counts["accepted"] + counts["refused"] + counts["failed"] + counts["unknown"]
        bar.update(done - bar.n)
        bar.set_postfix(refused=counts["refused"] + counts["failed"], retried=counts["retried"], refresh=False)

    return update, bar.close


async def merge(
    template: str | MergeTemplate,
    rows: Any,
    *,
    send: bool = False,
    client: SMTP | None = None,
    smtp: Mapping[str, Any] | None = None,
    html: str | None = None,
    markdown: bool = False,
    attachments: str | None = None,
    files: Sequence[str] = (),
    key: str | None = None,
    preview: int = 3,
    limit: int | None = None,
    rate: str | float | None = None,
    concurrency: int = 1,
    retries: int = 3,
    retry_delay: float = 2.0,
    reconnects: int = 3,
    stop_after_failures: int | None = None,
    journal: str | os.PathLike[str] | Journal = DEFAULT_JOURNAL,
    campaign: str = "default",
    resend_unknown: bool = False,
    continue_changed: bool = False,
    progress: bool | Progress = True,
) -> MergePreview | MergeResult:
    """Render ``template`` for every row, validate all, then preview (default) or send.

    ``rows``: a pandas DataFrame, a list of dicts, any iterable of mappings or
    a CSV path. ``key``: the column that identifies a row (default: its first
    recipient). Sending needs ``client`` (an ``SMTP``, connected or not) or
    ``smtp`` (the options of one); ``concurrency`` opens more connections with
    the same options. ``rate``: ``30/min``, ``2/s``… ``retries``: attempts
    after a 4xx reply or a drop before the data was sent, spaced
    ``retry_delay * 2**n`` seconds. The journal (a SQLite file, by default in
    the current directory) makes a rerun skip accepted rows and report, not
    resend, rows whose outcome is unknown (``resend_unknown=True`` resends).
    If the template changed since rows were accepted, nothing is sent unless
    ``continue_changed=True`` or another ``campaign`` is given.

    Raises ``TemplateError`` (the template), ``MergeValidationError`` (rows:
    nothing sent), ``TemplateChanged``.
    """
    if not isinstance(template, MergeTemplate):
        template = MergeTemplate(template, html=html, markdown=markdown, attachments=attachments, files=files)
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    per_second = parse_rate(rate)
    source = RowSource(rows)
    if send and client is None:
        if smtp is None:
            raise ValueError("sending needs client= (an smtp_nb.SMTP) or smtp= (its options)")
        client = SMTP(**smtp)
    owned_primary = client is not None and not client.is_connected
    if send and client is not None and not client.is_connected:
        await client.connect()
    try:
        return await _merge(
            template,
            source,
            send=send,
            client=client,
            owned_primary=owned_primary,
            key=key,
            preview=preview,
            limit=limit,
            per_second=per_second,
            concurrency=concurrency,
            retries=retries,
            retry_delay=retry_delay,
            reconnects=reconnects,
            stop_after_failures=stop_after_failures,
            journal=journal,
            campaign=campaign,
            resend_unknown=resend_unknown,
            continue_changed=continue_changed,
            progress=progress,
        )
    finally:
        if owned_primary and client is not None and client.is_connected:
            try:
                await client.quit()
            except SMTPException:
                client.close()


async def _merge(
    template: MergeTemplate,
    source: RowSource,
    *,
    send: bool,
    client: SMTP | None,
    owned_primary: bool,
    key: str | None,
    preview: int,
    limit: int | None,
    per_second: float | None,
    concurrency: int,
    retries: int,
    retry_delay: float,
    reconnects: int,
    stop_after_failures: int | None,
    journal: str | os.PathLike[str] | Journal,
    campaign: str,
    resend_unknown: bool,
    continue_changed: bool,
    progress: bool | Progress,
) -> MergePreview | MergeResult:
    size_limit = client.max_message_size if client is not None and client.is_connected else None
    eight_bit = client.supports_extension("8bitmime") if client is not None and client.is_connected else True
    jr = journal if isinstance(journal, Journal) else Journal(journal)

    # 1. Render and validate every row; nothing leaves before this is clean.
    problems: list[Problem] = []
    total_problems = 0
    jr.start_key_check()
    counts = {"rows": 0, "recipients": 0, "to_send": 0, "skipped": 0, "unknown": 0}
    shown: list[tuple[int, str, EmailMessage]] = []
    for number, row in source:
        counts["rows"] += 1
        try:
            rendered = template.render(row, number)
            recipients = rendered.recipients
            row_key = _key(row, recipients, key)
        except RowError as exc:
            total_problems += len(exc.problems)
            problems.extend(exc.problems[: max(0, _MAX_PROBLEMS - len(problems))])
            continue
        except KeyError:
            total_problems += 1
            if len(problems) < _MAX_PROBLEMS:
                problems.append(Problem(number, str(key), "no such column in this row (it is the --key column)"))
            continue
        found = []
        earlier = jr.seen_before(row_key, number)
        if earlier is not None:
            found.append(Problem(number, key or "To", f"duplicate key {row_key!r} (also row {earlier})"))
        if size_limit is not None:
            size = len(rendered.to_bytes(eight_bit=eight_bit))
            if size > size_limit:
                found.append(
                    Problem(number, "", f"the message is {size:,} bytes; the server accepts at most {size_limit:,}")
                )
        if found:
            total_problems += len(found)
            problems.extend(found[: max(0, _MAX_PROBLEMS - len(problems))])
            continue
        counts["recipients"] += len(recipients)
        state = jr.state(campaign, row_key)
        if state == "accepted":
            counts["skipped"] += 1
        elif state in ("unknown", "sending") and not resend_unknown:
            counts["unknown"] += 1
        else:
            counts["to_send"] += 1
            if len(shown) < preview:
                shown.append((number, row_key, rendered.to_message()))
    if total_problems:
        raise MergeValidationError(problems, total_problems, len({p.row for p in problems}))
    if not send:
        preview_result = MergePreview(
            messages=shown,
            rows=counts["rows"],
            recipients=counts["recipients"],
            to_send=counts["to_send"],
            skipped=counts["skipped"],
            unknown=counts["unknown"],
            size_limit=size_limit,
            journal=jr.path,
            campaign=campaign,
        )
        if not isinstance(journal, Journal):
            jr.close()
        return preview_result

    # 2. Send.
    assert client is not None
    run_number, died = jr.begin(campaign, template.fingerprint, continue_changed=continue_changed)
    report: Progress | None
    finish: Callable[[], None]
    if callable(progress):
        report, finish = progress, lambda: None
    elif progress:
        report, finish = _default_progress(min(counts["to_send"], limit) if limit is not None else counts["to_send"])
    else:
        report, finish = None, lambda: None
    run = _Run(
        template=template,
        source=source,
        journal=jr,
        campaign=campaign,
        run=run_number,
        key_column=key,
        resend_unknown=resend_unknown,
        limit=limit,
        retries=retries,
        retry_delay=retry_delay,
        stop_after_failures=stop_after_failures,
        pacer=_Pacer(per_second),
        eight_bit=eight_bit,
        progress=report,
    )
    started = time.monotonic()
    clients = [client] + [client.clone() for _ in range(concurrency - 1)]
    try:
        await asyncio.gather(
            *(_worker(run, c, owned=(c is not client or owned_primary), reconnects=reconnects) for c in clients)
        )
    finally:
        finish()
    return MergeResult(
        journal=jr,
        campaign=campaign,
        run=run_number,
        source=source,
        key_of=lambda row: _key(row, template.render(row, 0).recipients, key),
        counts=run.counts,
        died=died,
        stopped=run.stopped,
        seconds=time.monotonic() - started,
    )


def merge_sync(template: str | MergeTemplate, rows: Any, **options: Any) -> MergePreview | MergeResult:
    """``merge()`` from synchronous code, including inside a running event loop (Jupyter)."""
    return run_sync(lambda: merge(template, rows, **options))
