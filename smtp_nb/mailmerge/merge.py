"""``merge()``: a template times rows → validated messages → sent once each, with a journal and a result table.

Nothing is sent until every row has been rendered and validated and the
journal agrees (no other merge is sending this campaign, no row would be
resent with another message or to another server); then rows are claimed in
the journal before their data goes out, sent over one or more pipelined
connections at the rate asked, retried on 4xx replies and dropped connections
(with exponential backoff), and recorded as they are answered.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import email.utils
import hashlib
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..client.errors import SMTPException, SMTPResponseException
from ..client.smtp import SMTP
from ..client.sync import run_sync
from ..client.transaction import Delivery
from .errors import DestinationChanged, JournalError, MessagesChanged, TemplateChanged
from .journal import DEFAULT_JOURNAL, Journal
from .progress import Progress, done, rate, terminal_progress
from .results import MergePreview, MergeResult, MergeValidationError
from .rows import RowSource
from .template import MergeTemplate, Problem, RowError
from .wire import Rendered

__all__ = ["MergeOptions", "merge", "merge_sync", "parse_rate", "rate"]

_MAX_PROBLEMS = 200
_MAX_LISTED = 1000  # rows whose attachments a preview lists
#: Memory for rendered rows kept from the up-front check for sending (``_Checked.keep``), estimated as below.
_KEPT_BYTES = 4 * 2**20
_KEPT_OVERHEAD = 1500  # a Rendered's own objects (measured: 1.3 KB for a short text message), beyond its text


def parse_rate(rate: str | float | None) -> float | None:
    """Messages per second from ``30/min``, ``2/s``, ``500/h`` or a number; None for no limit."""
    if rate is None:
        return None
    if isinstance(rate, (int, float)) and not isinstance(rate, bool):
        if not rate > 0:
            raise ValueError(f"rate must be positive, not {rate!r}")
        return float(rate)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*", str(rate))
    if not match:
        raise ValueError(f"rate {rate!r} is not like '30/min', '2/s' or '500/h'")
    if not float(match[1]) > 0:
        raise ValueError(f"rate {rate!r} sends nothing: give more than 0 messages per unit")
    per = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}[match[2]]
    return float(match[1]) / per


@dataclass(frozen=True)
class MergeOptions:
    """Everything a merge is told besides the template and the rows; checked when made (``ValueError``)."""

    send: bool = False
    client: SMTP | None = None
    smtp: Mapping[str, Any] | None = None
    html: str | None = None
    markdown: bool = False
    #: Move the HTML template's <style> CSS into style attributes (False: the HTML as written).
    inline_css: bool = True
    attachments: str | None = None
    files: Sequence[str] = ()
    attachments_root: str | os.PathLike[str] | None = None
    loader: Any = None
    key: str | None = None
    preview: int = 3
    limit: int | None = None
    rate: str | float | None = None
    concurrency: int = 1
    #: Rows in flight per connection (where the server offers PIPELINING and CHUNKING), their "sending" marks
    #: committed together. After a cut at most ``window`` rows per connection can be ``unknown`` (sent, verdict
    #: never seen); a row whose data had not gone out is retried. After a kill, which leaves every row marked
    #: "sending" unknown, at most ``max(window, 2)`` per connection: with DATA the next row's envelope goes
    #: out with the last one's data, before its verdict. Default 1.
    window: int = 1
    retries: int = 3
    retry_delay: float = 2.0
    reconnects: int = 3
    stop_after_failures: int | None = None
    journal: str | os.PathLike[str] | Journal = DEFAULT_JOURNAL
    campaign: str = "default"
    resend_unknown: bool = False
    continue_changed: bool = False
    #: The destination is the embedded server: what it accepts is a rehearsal, never counted as sent elsewhere.
    embedded: bool = False
    progress: bool | Progress = True

    def __post_init__(self) -> None:
        for name, least in (("concurrency", 1), ("window", 1), ("retries", 0), ("reconnects", 0), ("preview", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be a whole number of at least {least}, not {value!r}")
        for name in ("limit", "stop_after_failures"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
        if not isinstance(self.retry_delay, (int, float)) or not self.retry_delay >= 0:
            raise ValueError(f"retry_delay must be a number of seconds, 0 or more, not {self.retry_delay!r}")
        if not isinstance(self.campaign, str) or not self.campaign.strip():
            raise ValueError("campaign must be a non-empty name")
        parse_rate(self.rate)

    @property
    def per_second(self) -> float | None:
        return parse_rate(self.rate)

    def template(self, text: str | MergeTemplate) -> MergeTemplate:
        if isinstance(text, MergeTemplate):
            return text
        return MergeTemplate(
            text,
            html=self.html,
            markdown=self.markdown,
            inline_css=self.inline_css,
            attachments=self.attachments,
            files=self.files,
            attachments_root=self.attachments_root,
            loader=self.loader,
        )


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
class _Destination:
    """Where this run's mail goes: ``where`` (host:port and user) and whether it is a rehearsal."""

    where: str
    rehearsal: bool

    @classmethod
    def of(cls, client: SMTP | None, embedded: bool) -> _Destination | None:
        if client is None:
            return None
        if client.socket_path is not None:
            where = str(os.fsdecode(client.socket_path))
        else:
            port = client.port or (465 if client.use_tls else 587 if client.start_tls else 25)
            where = f"{(client.hostname or 'localhost').lower()}:{port}"
        user = client.username.decode() if isinstance(client.username, bytes) else client.username
        return cls(where + (f" as {user}" if user else ""), embedded)


def _decide(found: dict[str, Any] | None, rendered: Rendered, to: _Destination | None, opts: MergeOptions) -> str:
    """What to do with a row given its journal entry: send, skip, unknown, rehearsed (send), changed, elsewhere."""
    if found is None or found["state"] in ("refused", "failed"):
        return "send"
    if found["rehearsal"] and to is not None and not to.rehearsal and found["state"] != "sending":
        return "rehearsed"  # whatever happened on the embedded server, nobody got mail
    if found["state"] in ("sending", "unknown"):
        return "send" if opts.resend_unknown else "unknown"
    if found["state"] != "accepted":
        return "send"
    changed = bool(found["digest"]) and found["digest"] != rendered.digest()
    if found["rehearsal"]:
        return "send" if changed and to is not None else "skip"
    if to is None or to.rehearsal or opts.continue_changed:
        return "skip"
    if found["destination"] and found["destination"] != to.where:
        return "elsewhere"
    return "changed" if changed else "skip"


@dataclass
class _Item:
    """A row ready to send (or to send again)."""

    number: int
    key: str
    sender: str
    recipients: list[str]
    data: bytes
    message_id: str
    digest: str
    attempt: int = 0
    due: float = 0.0


@dataclass
class _Run:
    """The state shared by the connections of one sending run."""

    template: MergeTemplate
    source: RowSource
    journal: Journal
    opts: MergeOptions
    run: int
    salt: str
    destination: _Destination
    eight_bit: bool
    total: int
    progress: Progress | None
    pacer: _Pacer
    new: bool  # the campaign had no row in the journal: no row to look up before claiming
    #: Rows rendered by the up-front check, by row number: sent as checked, not rendered again (see ``_Checked``).
    kept: dict[int, tuple[str, Rendered]] = field(default_factory=dict)
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("accepted", "refused", "failed", "unknown", "skipped", "retried", "skipped_rehearsed"), 0
        )
    )
    retry_queue: list[_Item] = field(default_factory=list)
    in_flight: int = 0
    left_unknown: int = 0  # rows an earlier run left unknown, not resent: counted, but not this run's work
    new_rows: int = 0
    stopped: str | None = None
    error: BaseException | None = None
    exhausted: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self._rows = iter(self.source)
        self._lock = asyncio.Lock()
        #: Rows claimed ("sending" on disk) in one commit and not yet handed to a connection.
        self._claimed: collections.deque[_Item] = collections.deque()
        self._date = (-1, "")  # the Date header, formatted once a second rather than once a row (see ``_dated``)

    @property
    def at_risk(self) -> int:
        """Rows claimed and not yet settled: at most this many, or one more than those in flight (see ``window``)."""
        return self.opts.window * self.opts.concurrency

    # -- handing out rows ---------------------------------------------------------------

    def __aiter__(self) -> _Run:
        return self

    async def __anext__(self) -> tuple[str, list[str], bytes, _Item]:
        """The next row for a connection: a retry that is due, else a new row; StopAsyncIteration when none now.

        Rows are claimed a window at a time, in one commit, so that the rows claimed and not yet
        settled never exceed ``at_risk``; with a rate, one at a time so that the pace holds.
        """
        async with self._lock:
            while not self._claimed:
                if self.stopped:
                    self.flush()
                    raise StopAsyncIteration
                room = 1 if self.opts.per_second else max(1, self.at_risk - self.in_flight)
                items = await self._gather(room)
                if items is None:
                    self.flush()
                    raise StopAsyncIteration
                self._claim(items)
            if self.stopped:
                self.flush()
                raise StopAsyncIteration
            item = self._claimed.popleft()
            self.in_flight += 1
            return item.sender, item.recipients, item.data, item

    async def _gather(self, room: int) -> list[_Item] | None:
        """Up to ``room`` rows to send now (waiting for a retry if that is all there is); None when none remain."""
        items: list[_Item] = []
        loop = asyncio.get_running_loop()
        while len(items) < room and not self.stopped:
            if self.retry_queue and self.retry_queue[0].due <= loop.time():
                items.append(self.retry_queue.pop(0))
            elif not self.exhausted and (
                self.opts.limit is None or self.new_rows + self._fresh(items) < self.opts.limit
            ):
                found = self._next_new()
                if found is not None:
                    items.append(found)
            elif items:
                break
            elif self.retry_queue:
                self.flush()
                await asyncio.sleep(max(0.0, self.retry_queue[0].due - loop.time()))
            else:
                return None
        if self.pacer.interval:
            self.flush()
            await self.pacer.wait()
        return items

    @staticmethod
    def _fresh(items: list[_Item]) -> int:
        return sum(item.attempt == 0 for item in items)

    def _claim(self, items: list[_Item]) -> None:
        """Mark ``items`` as being sent, in one commit; keep those this run won."""
        if not items:
            return
        try:
            attempts = self.journal.claim_many(
                self.opts.campaign,
                [dict(key=i.key, row=i.number, recipients=i.recipients, message_id=i.message_id) for i in items],
                fingerprint=self.template.fingerprint,
                run=self.run,
                resend_unknown=self.opts.resend_unknown,
                destination=self.destination.where,
                rehearsal=self.destination.rehearsal,
            )
        except JournalError as exc:
            self.stop(exc)
            return
        for item, attempt in zip(items, attempts, strict=True):
            if attempt is None:  # taken by another run after we looked: never ours to send
                self.counts["skipped"] += 1
                continue
            if item.attempt == 0:
                self.new_rows += 1
            item.attempt = attempt
            self._claimed.append(item)

    def flush(self) -> None:
        """Outcomes to disk now: before this run waits for anything, and when it ends (see ``Journal.record``)."""
        try:
            self.journal.flush()
        except JournalError as exc:
            self.stop(exc)

    def release_unsent(self) -> None:
        """Rows claimed but never handed out (the run stopped): their data never left, so the claim is undone."""
        if self._claimed:
            keys = [item.key for item in self._claimed]
            self._claimed.clear()
            try:
                self.journal.unclaim(self.opts.campaign, keys)
            except JournalError as exc:
                self.stop(exc)

    def _next_new(self) -> _Item | None:
        """Render the next row that needs sending; None if this row is skipped, and mark exhaustion."""
        try:
            number, row = next(self._rows)
        except StopIteration:
            self.exhausted = True
            return None
        kept = self.kept.pop(number, None)
        if kept is not None:
            key, rendered = kept
        else:
            rendered = self.template.render(row, number)
            key = _key(row, rendered.recipients, self.opts.key)
        sender, recipients = rendered.sender, rendered.recipients
        found = None if self.new else self.journal.row(self.opts.campaign, key)
        decision = _decide(found, rendered, self.destination, self.opts)
        if decision not in ("send", "rehearsed"):
            self.counts["unknown" if decision == "unknown" else "skipped"] += 1
            self.counts["skipped_rehearsed"] += decision == "skip" and bool(found and found["rehearsal"])
            self.left_unknown += decision == "unknown"
            return None
        message_id = _message_id(self.salt, self.opts.campaign, key, sender)
        dated = rendered.with_headers(Message_ID=message_id, Date=self._dated())
        data = dated.to_bytes(eight_bit=self.eight_bit)
        return _Item(number, key, sender, recipients, data, message_id, rendered.digest())

    def _dated(self) -> str:
        """Now, as a Date header: ``formatdate`` costs more than most of a row's steps, and changes once a second."""
        second = int(time.time())
        if second != self._date[0]:
            self._date = (second, email.utils.formatdate(second, localtime=True))
        return self._date[1]

    def stop(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.stopped = self.stopped or str(error)
        self.changed.set()

    # -- taking answers ------------------------------------------------------------------

    def settle(self, delivery: Delivery) -> None:
        """Record one delivery; queue a retry when it may succeed later."""
        item: _Item = delivery.tag
        self.in_flight -= 1
        try:
            self._settle(item, delivery)
        except JournalError as exc:
            self.stop(exc)
        if self.progress is not None:
            self.progress(self.report())
        self.changed.set()

    def report(self) -> dict[str, int]:
        elapsed = int(1000 * (time.monotonic() - self.started))
        this_run = dict(self.counts, unknown=self.counts["unknown"] - self.left_unknown)  # what ``total`` counts
        return dict(
            this_run, total=self.total, in_flight=self.in_flight, retrying=len(self.retry_queue), elapsed_ms=elapsed
        )

    def _settle(self, item: _Item, delivery: Delivery) -> None:
        campaign, status, error = self.opts.campaign, delivery.status, delivery.error
        if status == "accepted":
            assert delivery.data is not None
            self.journal.record(
                campaign,
                item.key,
                "accepted",
                code=delivery.data.code,
                reply=delivery.data.message,
                digest=item.digest,
                later=True,
            )
            self.counts["accepted"] += 1
            return
        if status == "unknown":
            reply = f"unknown: the data was sent but no verdict came back ({error})"
            self.journal.record(campaign, item.key, "unknown", code=None, reply=reply, later=True)
            self.counts["unknown"] += 1
            return
        code = error.code if isinstance(error, SMTPResponseException) else None
        if code is None and delivery.refused:
            code = next(iter(delivery.refused.values())).code
        reply = _describe(error)
        if delivery.transient and item.attempt <= self.opts.retries:
            delay = self.opts.retry_delay * 2 ** (item.attempt - 1)
            item.due = asyncio.get_running_loop().time() + delay
            self.retry_queue.append(item)
            self.retry_queue.sort(key=lambda i: i.due)
            self.counts["retried"] += 1
            self.journal.record(
                campaign, item.key, "failed", code=code, reply=f"{reply} (retrying in {delay:g}s)", later=True
            )
            return
        final_state = "refused" if status == "refused" else "failed"
        self.journal.record(campaign, item.key, final_state, code=code, reply=reply, later=True)
        self.counts[final_state] += 1
        failures = self.counts["refused"] + self.counts["failed"]
        limit = self.opts.stop_after_failures
        if limit is not None and failures >= limit and not self.stopped:
            self.stopped = f"{failures} rows failed (--stop-after-failures {limit})"

    @property
    def finished(self) -> bool:
        return bool(self.stopped) or (
            not self._claimed
            and (self.exhausted or (self.opts.limit is not None and self.new_rows >= self.opts.limit))
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


def _message_id(salt: str, campaign: str, key: str, sender: str) -> str:
    """The same for every attempt of a row in its campaign; another campaign or journal has another salt."""
    digest = hashlib.sha256(f"{salt}\0{campaign}\0{key}".encode()).hexdigest()[:24]
    domain = sender.rpartition("@")[2] or "smtp-nb.invalid"
    return f"<{digest}.merge@{domain}>"


async def _worker(run: _Run, client: SMTP, owned: bool) -> None:
    """One connection: send while there is work, reconnecting after a drop."""
    failures = 0
    try:
        while not run.finished:
            if not client.is_connected:
                run.flush()
                try:
                    await client.connect()
                    failures = 0
                except (SMTPException, OSError) as exc:
                    failures += 1
                    if failures > run.opts.reconnects:
                        if not run.stopped:
                            run.stopped = f"cannot reconnect to the server: {exc}"
                        run.changed.set()
                        return
                    await asyncio.sleep(run.opts.retry_delay * 2 ** (failures - 1))
                    continue
            async for delivery in client.send_many(run, window=run.opts.window):
                run.settle(delivery)
            if client.is_connected and not run.finished and not run.retry_queue:
                # Nothing to hand out now, but rows in flight elsewhere may come back for a retry.
                run.changed.clear()
                if not run.finished:
                    run.flush()
                    await run.changed.wait()
    finally:
        if owned and client.is_connected:
            try:
                await client.quit()
            except SMTPException:
                client.close()


async def merge(
    template: str | MergeTemplate, rows: Any, *, options: MergeOptions | None = None, **kwargs: Any
) -> MergePreview | MergeResult:
    """Render ``template`` for every row, validate all, then preview (default) or send.

    ``rows``: a pandas DataFrame, a list of dicts, any iterable of mappings or
    a CSV path. The options (``MergeOptions``, or the same as keywords):
    ``key`` is the column that identifies a row (default: its first
    recipient). Sending (``send=True``) needs ``client`` (an ``SMTP``,
    connected or not) or ``smtp`` (the options of one); ``concurrency`` opens
    more connections with the same options; ``embedded=True`` says the server
    is the embedded one (a rehearsal). ``rate``: ``30/min``, ``2/s``…
    ``retries``: attempts after a 4xx reply or a drop before the data was
    sent, spaced ``retry_delay * 2**n`` seconds. The journal (a SQLite file,
    by default in the current directory) makes a rerun skip accepted rows and
    report, not resend, rows whose outcome is unknown (``resend_unknown=True``
    resends). If rows were accepted with another message or by another real
    server, nothing is sent unless ``continue_changed=True`` (count them as
    sent) or another ``campaign`` is given (send everyone).

    Raises ``TemplateError``, ``MergeValidationError`` (rows: nothing sent),
    ``MessagesChanged``, ``DestinationChanged``, ``MergeBusy``, ``JournalError``.
    """
    opts = dataclasses.replace(options, **kwargs) if options is not None else MergeOptions(**kwargs)
    merge_template = opts.template(template)
    source = RowSource(rows)
    client = opts.client
    if opts.send and client is None:
        if opts.smtp is None:
            raise ValueError("sending needs client= (an smtp_nb.SMTP) or smtp= (its options)")
        client = SMTP(**opts.smtp)
    owned_primary = client is not None and not client.is_connected
    if opts.send and client is not None and not client.is_connected:
        await client.connect()
    try:
        return await _merge(merge_template, source, opts, client, owned_primary)
    finally:
        if owned_primary and client is not None and client.is_connected:
            try:
                await client.quit()
            except SMTPException:
                client.close()


def _journal_path(opts: MergeOptions) -> str:
    path = os.fspath(opts.journal) if not isinstance(opts.journal, Journal) else opts.journal.path
    return path if path == ":memory:" else os.path.abspath(path)


def _open_journal(opts: MergeOptions) -> tuple[Journal | None, bool]:
    """The journal to use and whether this merge owns (closes) it; a preview only looks, and creates nothing."""
    if isinstance(opts.journal, Journal):
        return opts.journal, False
    if not opts.send:
        return Journal.peek(opts.journal), True
    return Journal(opts.journal), True


async def _merge(
    template: MergeTemplate, source: RowSource, opts: MergeOptions, client: SMTP | None, owned_primary: bool
) -> MergePreview | MergeResult:
    connected = client is not None and client.is_connected
    destination = _Destination.of(client if connected else None, opts.embedded)
    journal, owned = _open_journal(opts)
    leased = False
    try:
        salt, run_number, died = "", 0, list[str]()
        if opts.send and journal is not None:
            run_number, salt, died = journal.acquire(opts.campaign, template.fingerprint)
            leased = True
        checked = _validate(template, source, opts, client if connected else None, journal, destination)
        if not opts.send:
            return checked.preview(opts, journal.path if journal else _journal_path(opts))
        assert client is not None and journal is not None and destination is not None
        checked.stop_if_changed(opts, journal, template)
        journal.set_fingerprint(opts.campaign, template.fingerprint)
        return await _send(template, source, opts, client, owned_primary, journal, (run_number, salt, died),
                           destination, total=checked.counts["to_send"], new=checked.new,
                           kept=checked.kept)  # fmt: skip
    finally:
        if journal is not None:
            if leased:
                try:
                    journal.release(opts.campaign)
                except JournalError:
                    pass  # the journal vanished: the error that stopped the run says so
            if owned:
                journal.close()


@dataclass
class _Checked:
    """What validation found: counts, the first messages, notes, attachments, rows accepted differently."""

    counts: dict[str, int]
    shown: list[tuple[int, str, Any, list[tuple[str, int]]]]
    notes: list[Problem]
    attachments: list[tuple[int, list[tuple[str, int]]]]
    changed: list[int]
    elsewhere: dict[str, list[int]]
    new: bool = False  # the journal held no row of the campaign
    #: The rendered rows to send, by row number, while they fit in ``_KEPT_BYTES``: sending then renders only
    #: the rows beyond (rendering is most of a text row's cost), and memory stays flat however many rows come.
    kept: dict[int, tuple[str, Rendered]] = field(default_factory=dict)
    kept_bytes: int = 0

    def keep(self, number: int, key: str, rendered: Rendered) -> None:
        images = sum(len(image.data) for image in rendered.images)
        size = _KEPT_OVERHEAD + len(rendered.text) + len(rendered.html or "") + images
        if self.kept_bytes + size <= _KEPT_BYTES:
            self.kept[number] = (key, rendered)
            self.kept_bytes += size

    def preview(self, opts: MergeOptions, journal_path: str) -> MergePreview:
        return MergePreview(
            messages=self.shown,
            rows=self.counts["rows"],
            recipients=self.counts["recipients"],
            to_send=self.counts["to_send"],
            skipped=self.counts["skipped"],
            unknown=self.counts["unknown"],
            rehearsed=self.counts["rehearsed"],
            changed=len(self.changed) + sum(len(v) for v in self.elsewhere.values()),
            notes=self.notes,
            attachments=self.attachments,
            attachment_rows=self.counts["attachment_rows"],
            size_limit=self.counts.get("size_limit"),
            journal=journal_path,
            campaign=opts.campaign,
        )

    def stop_if_changed(self, opts: MergeOptions, journal: Journal, template: MergeTemplate) -> None:
        ways = (
            "To send everyone this version, start a new campaign (--campaign NEW / campaign='new'); to count "
            "them as sent and send only the other rows, continue this one (--continue / continue_changed=True)"
        )
        if self.elsewhere:
            where, rows = next(iter(self.elsewhere.items()))
            total = sum(len(v) for v in self.elsewhere.values())
            raise DestinationChanged(
                f"{total} row(s) of campaign {opts.campaign!r} were accepted by {where}, another server than this "
                f"one (rows {_listed(rows)}), so nothing was sent. {ways}"
            )
        if self.changed:
            campaign = journal.campaign(opts.campaign)
            if campaign is not None and campaign["fingerprint"] != template.fingerprint:
                raise TemplateChanged(
                    f"the template changed since {len(self.changed)} row(s) of campaign {opts.campaign!r} were "
                    f"accepted (rows {_listed(self.changed)}), so nothing was sent. {ways}",
                    rows=self.changed,
                )
            raise MessagesChanged(
                f"{len(self.changed)} row(s) of campaign {opts.campaign!r} were accepted with another message than "
                f"they would get now (rows {_listed(self.changed)}: their data changed), so nothing was sent. {ways}",
                rows=self.changed,
            )


def _listed(rows: list[int]) -> str:
    return ", ".join(str(r) for r in rows[:10]) + (f" and {len(rows) - 10} more" if len(rows) > 10 else "")


def _validate(
    template: MergeTemplate,
    source: RowSource,
    opts: MergeOptions,
    client: SMTP | None,
    journal: Journal | None,
    destination: _Destination | None,
) -> _Checked:
    """Render and check every row (nothing leaves before this is clean); ``MergeValidationError`` lists problems."""
    size_limit = client.max_message_size if client is not None else None
    eight_bit = client.supports_extension("8bitmime") if client is not None else True
    problems: list[Problem] = []
    total_problems = 0
    keys: dict[str, int] = {}
    counts = dict.fromkeys(("rows", "recipients", "to_send", "skipped", "unknown", "rehearsed", "attachment_rows"), 0)
    checked = _Checked(counts, [], [], [], [], {})
    if journal is not None and journal.count(opts.campaign) == 0:
        journal = None  # a new campaign: no row to look up (this run holds its lease, so it stays new)
        checked.new = True
    for number, row in source:
        counts["rows"] += 1
        try:
            rendered = template.render(row, number)
            recipients = rendered.recipients
            row_key = _key(row, recipients, opts.key)
        except RowError as exc:
            total_problems += len(exc.problems)
            problems.extend(exc.problems[: max(0, _MAX_PROBLEMS - len(problems))])
            continue
        except KeyError:
            total_problems += 1
            if len(problems) < _MAX_PROBLEMS:
                problems.append(Problem(number, str(opts.key), "no such column in this row (it is the --key column)"))
            continue
        found = []
        earlier = keys.setdefault(row_key, number)
        if earlier != number:
            found.append(Problem(number, opts.key or "To", f"duplicate key {row_key!r} (also row {earlier})"))
        if size_limit is not None and rendered.size_bound() > size_limit:  # near the limit: serialize to know
            size = rendered.estimated_size(eight_bit=eight_bit)
            if size > size_limit:
                found.append(
                    Problem(number, "", f"the message is {size:,} bytes; the server accepts at most {size_limit:,}")
                )
        if found:
            total_problems += len(found)
            problems.extend(found[: max(0, _MAX_PROBLEMS - len(problems))])
            continue
        counts["recipients"] += len(recipients)
        checked.notes.extend(rendered.notes[: max(0, _MAX_PROBLEMS - len(checked.notes))])
        files = [(a.name, a.size) for a in rendered.attachments]
        counts["attachment_rows"] += bool(files)
        if files and len(checked.attachments) < _MAX_LISTED:
            checked.attachments.append((number, files))
        entry = journal.row(opts.campaign, row_key) if journal is not None else None
        decision = _decide(entry, rendered, destination, opts)
        if decision == "changed":
            checked.changed.append(number)
        elif decision == "elsewhere":
            assert entry is not None
            checked.elsewhere.setdefault(str(entry["destination"]), []).append(number)
        elif decision in ("skip", "unknown"):
            counts["skipped" if decision == "skip" else "unknown"] += 1
            if decision == "skip" and entry is not None and entry["rehearsal"]:
                counts["rehearsed"] += 1
        else:
            counts["to_send"] += 1
            counts["rehearsed"] += decision == "rehearsed"
            if opts.send:
                checked.keep(number, row_key, rendered)
            elif len(checked.shown) < opts.preview:
                checked.shown.append((number, row_key, rendered.to_message(attachments=False), files))
    if total_problems:
        raise MergeValidationError(problems, total_problems, len({p.row for p in problems}))
    if size_limit is not None:
        counts["size_limit"] = size_limit
    return checked


async def _send(
    template: MergeTemplate,
    source: RowSource,
    opts: MergeOptions,
    client: SMTP,
    owned_primary: bool,
    journal: Journal,
    started: tuple[int, str, list[str]],
    destination: _Destination,
    *,
    total: int,
    new: bool,
    kept: dict[int, tuple[str, Rendered]],
) -> MergeResult:
    run_number, salt, died = started
    total = min(total, opts.limit) if opts.limit is not None else total
    report: Progress | None
    if callable(opts.progress):
        report, finish = opts.progress, lambda: None
    elif opts.progress:
        report, finish = terminal_progress(total)
    else:
        report, finish = None, lambda: None
    run = _Run(
        template=template,
        source=source,
        journal=journal,
        opts=opts,
        run=run_number,
        salt=salt,
        destination=destination,
        eight_bit=client.supports_extension("8bitmime"),
        total=total,
        progress=report,
        pacer=_Pacer(opts.per_second),
        new=new,
        kept=kept,
    )
    clock = time.monotonic()
    clients = [client] + [client.clone() for _ in range(opts.concurrency - 1)]
    try:
        await asyncio.gather(*(_worker(run, c, owned=(c is not client or owned_primary)) for c in clients))
        journal.check_still_there()
    except JournalError as exc:
        run.stop(exc)
    finally:
        run.flush()
        run.release_unsent()
        finish()
    if run.error is not None:
        raise run.error
    return MergeResult(
        journal=journal,
        campaign=opts.campaign,
        run=run_number,
        source=source,
        key_of=lambda row: _key(row, template.render(row, 0).recipients, opts.key),
        counts=run.counts,
        died=died,
        stopped=run.stopped,
        seconds=time.monotonic() - clock,
        rehearsal=destination.rehearsal,
        done=done(run.counts),
    )


def merge_sync(template: str | MergeTemplate, rows: Any, **options: Any) -> MergePreview | MergeResult:
    """``merge()`` from synchronous code, including inside a running event loop (Jupyter)."""
    return run_sync(lambda: merge(template, rows, **options))
