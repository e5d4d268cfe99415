"""The merge journal: an SQLite file that remembers, per campaign and row key, what happened, where and what.

A row is marked ``sending`` (and the mark is on disk) before its data goes
out, then recorded ``accepted``, ``refused``, ``failed`` (never accepted,
retries spent) or ``unknown`` (the data went out but the verdict did not come
back). Each accepted row keeps the server that took it (host, port, user, and
whether it was the embedded server: a rehearsal) and a digest of the message.

One merge sends a campaign at a time: a run holds the campaign's lease (a
conditional update that only one run wins) until it ends; a lease whose
process died on this machine is taken over, and only then do rows it left
``sending`` become ``unknown``. Each row is claimed by a conditional update
too, so even a run without the lease can never send a row another has taken.

WAL mode. The ``sending`` mark is committed with ``synchronous=FULL``;
outcomes with ``NORMAL``, because losing one can only turn it into
``unknown`` — never into a second send. Every sqlite3 error becomes a
``JournalError`` naming the file and what to do.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from .errors import JournalError, MergeBusy

__all__ = ["DEFAULT_JOURNAL", "Journal"]

DEFAULT_JOURNAL = "smtp_nb-journal.sqlite"
#: Owners of the leases held by journals open in this process: a lease of this process not in here is abandoned.
_LIVE_OWNERS: set[str] = set()
#: How often a run refreshes its lease's heartbeat (each refresh is one more synced write).
_HEARTBEAT_SECONDS = 30
#: A lease held by another machine (a shared folder) counts as abandoned after this long without news.
_FOREIGN_LEASE_SECONDS = 600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (
    name TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    created REAL NOT NULL,
    runs INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS rows (
    campaign TEXT NOT NULL,
    key TEXT NOT NULL,
    row INTEGER,
    state TEXT NOT NULL,
    recipients TEXT NOT NULL DEFAULT '',
    code INTEGER,
    reply TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    fingerprint TEXT NOT NULL DEFAULT '',
    run INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL,
    PRIMARY KEY (campaign, key)
);
"""
#: Columns added after the first release: an older journal gains them when it is opened for writing.
_ADDED = {
    "campaigns": {"salt": "TEXT NOT NULL DEFAULT ''", "owner": "TEXT", "heartbeat": "REAL"},
    "rows": {"digest": "TEXT NOT NULL DEFAULT ''", "destination": "TEXT NOT NULL DEFAULT ''",
             "rehearsal": "INTEGER NOT NULL DEFAULT 0", "owner": "TEXT NOT NULL DEFAULT ''"},
}  # fmt: skip


def _advice(path: str, error: BaseException) -> str:
    """What went wrong with the journal at ``path``, and what to do, in one sentence."""
    text = str(error).lower()
    folder = os.path.dirname(path) or "."
    if os.path.isdir(path):
        return f"the journal {path} is a folder, not a file: give a file path with --journal / journal="
    if not os.path.isdir(folder):
        return f"the journal {path} cannot be made: its folder does not exist; create it, or give another --journal"
    if "full" in text:
        return f"the disk holding the journal {path} is full: free some space and run the merge again"
    if (
        "readonly" in text
        or "read-only" in text
        or "permission" in text
        or (os.path.exists(path) and not os.access(path, os.W_OK))
    ):
        return f"the journal {path} is read-only: make it (and its folder) writable, or give another --journal"
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return (
            f"the journal {path} is not a merge journal or is damaged: move it away (it may be another "
            "file) or give another --journal; a new journal does not know which rows were sent"
        )
    return f"the journal {path} cannot be used ({error}): check the file, or give another --journal"


def _rollback(db: sqlite3.Connection) -> None:
    """Undo the open transaction, if SQLite has not already (it does itself on a full disk, and a second
    ROLLBACK would then fail with "no transaction is active" and hide why)."""
    if db.in_transaction:
        db.execute("ROLLBACK")


def _switch_to_wal(db: sqlite3.Connection, patience: float = 10.0) -> None:
    """``PRAGMA journal_mode=WAL``, retried: SQLite answers "database is locked" at once, without its busy
    handler, when another process is switching the same new file at that moment."""
    deadline = time.monotonic() + patience
    pause = 0.001
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


class Journal:
    """One journal file (``":memory:"`` for a throwaway one). ``readonly``: look, never write or create."""

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_JOURNAL, *, readonly: bool = False) -> None:
        self.path = os.fspath(path)
        if self.path != ":memory:":
            self.path = os.path.abspath(self.path)
        self.readonly = readonly
        self._db: sqlite3.Connection | None = None
        self._synchronous = ""
        self._identity: tuple[int, int] | None = None
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._leased: set[str] = set()
        #: Outcomes recorded ``later``: written by the next claim's commit or by ``flush()``.
        self._pending: list[tuple[Any, ...]] = []
        self._heartbeat = time.monotonic()
        with self._guard():
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        memory = self.path == ":memory:"
        if not memory and os.path.isdir(self.path):
            raise sqlite3.OperationalError("is a directory")
        if self.readonly and not memory:
            uri = "file:" + self.path.replace("?", "%3f").replace("#", "%23") + "?mode=ro"
            db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        else:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA busy_timeout = 10000")
            if not self.readonly:
                if not memory:
                    _switch_to_wal(db)
                db.execute("BEGIN IMMEDIATE")  # two merges opening a new journal at once: one makes the tables
                try:
                    for statement in filter(str.strip, _SCHEMA.split(";")):
                        db.execute(statement)
                    for table, columns in _ADDED.items():
                        have = {r["name"] for r in db.execute(f"PRAGMA table_info({table})")}
                        for name, kind in columns.items():
                            if name not in have:
                                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
                    db.execute("COMMIT")
                except BaseException:
                    _rollback(db)
                    raise
                if not memory:
                    found = os.stat(self.path)
                    self._identity = (found.st_dev, found.st_ino)
            else:
                db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # a corrupt file fails here
        except BaseException:
            db.close()
            raise
        return db

    @classmethod
    def peek(cls, path: str | os.PathLike[str]) -> Journal | None:
        """The journal at ``path`` opened read-only, or None if there is none (a preview creates no file)."""
        if os.fspath(path) == ":memory:" or not os.path.exists(path):
            return None
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            return None  # an empty file (touched, or made by SQLite and never written): nothing recorded yet
        return cls(path, readonly=True)

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """sqlite3 and OS errors become a ``JournalError`` that names the file and what to do."""
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            if isinstance(exc, JournalError):
                raise
            raise JournalError(_advice(self.path, exc)) from exc

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise JournalError(f"the journal {self.path} was closed")
        return self._db

    def _sync(self, level: str) -> None:
        if level != self._synchronous:
            self.db.execute(f"PRAGMA synchronous={level}")
            self._synchronous = level

    def close(self) -> None:
        """Close the file; a lease still held stays in the file but counts as abandoned (as if the run died)."""
        if self._pending and self._db is not None:
            try:
                self.flush()
            except JournalError:
                pass  # the file is gone or broken: the run that recorded them has stopped on that error already
        _LIVE_OWNERS.discard(self.owner)
        self._leased.clear()
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def check_still_there(self) -> None:
        """Raise ``JournalError`` if the file was deleted or replaced since it was opened."""
        if self._identity is None:
            return
        try:
            found = os.stat(self.path)
            same = (found.st_dev, found.st_ino) == self._identity
        except OSError:
            same = False
        if not same:
            raise JournalError(
                f"the journal {self.path} was deleted or replaced while the merge ran, so the merge stopped: "
                "without it a rerun would send the rows already accepted again. Put the file back if you can"
            )

    # -- campaigns -------------------------------------------------------------------

    def campaign(self, name: str) -> dict[str, Any] | None:
        with self._guard():
            found = self.db.execute("SELECT * FROM campaigns WHERE name = ?", (name,)).fetchone()
        return None if found is None else dict(found)

    def acquire(self, campaign: str, fingerprint: str) -> tuple[int, str, list[str]]:
        """Take the campaign's lease and start a run: (run number, Message-ID salt, keys a dead run left ``sending``).

        Raises ``MergeBusy`` if a live merge holds the lease.
        """
        with self._guard():
            now = time.time()
            self._sync("FULL")
            self.db.execute(
                "INSERT INTO campaigns (name, fingerprint, created, runs, salt) VALUES (?, ?, ?, 0, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (campaign, fingerprint, now, secrets.token_hex(8)),
            )
            found = self.db.execute("SELECT owner, heartbeat FROM campaigns WHERE name = ?", (campaign,)).fetchone()
            holder = found["owner"]
            if campaign in self._leased or (
                holder and holder != self.owner and not _abandoned(holder, found["heartbeat"] or 0, now)
            ):
                raise _busy(self.path, campaign, holder or self.owner)
            won = self.db.execute(
                "UPDATE campaigns SET owner = ?, heartbeat = ?, runs = runs + 1, "
                "salt = CASE salt WHEN '' THEN ? ELSE salt END WHERE name = ? AND owner IS ?",
                (self.owner, now, secrets.token_hex(8), campaign, holder),
            ).rowcount
            if not won:  # another run took it between our look and our update
                holder = self.db.execute("SELECT owner FROM campaigns WHERE name = ?", (campaign,)).fetchone()[0]
                raise _busy(self.path, campaign, holder or "?")
            self._leased.add(campaign)
            _LIVE_OWNERS.add(self.owner)
            found = self.db.execute("SELECT runs, salt FROM campaigns WHERE name = ?", (campaign,)).fetchone()
            died = [
                r["key"]
                for r in self.db.execute(
                    "SELECT key FROM rows WHERE campaign = ? AND state = 'sending' AND owner != ?",
                    (campaign, self.owner),
                )
            ]
            if died:
                self.db.execute(
                    "UPDATE rows SET state = 'unknown', reply = 'the run sending it stopped before the server "
                    "answered', updated = ? WHERE campaign = ? AND state = 'sending' AND owner != ?",
                    (now, campaign, self.owner),
                )
        return int(found["runs"]), str(found["salt"]), died

    def set_fingerprint(self, campaign: str, fingerprint: str) -> None:
        """The template this campaign now sends with (once the run has passed its checks)."""
        with self._guard():
            self.db.execute("UPDATE campaigns SET fingerprint = ? WHERE name = ?", (fingerprint, campaign))

    def release(self, campaign: str) -> None:
        """Give the lease back (the run ended)."""
        self._leased.discard(campaign)
        if not self._leased:
            _LIVE_OWNERS.discard(self.owner)
        with self._guard():
            self.db.execute("UPDATE campaigns SET owner = NULL WHERE name = ? AND owner = ?", (campaign, self.owner))

    # -- rows ---------------------------------------------------------------------------

    def row(self, campaign: str, key: str) -> dict[str, Any] | None:
        with self._guard():
            found = self.db.execute(
                "SELECT state, digest, destination, rehearsal, row FROM rows WHERE campaign = ? AND key = ?",
                (campaign, key),
            ).fetchone()
        return None if found is None else dict(found)

    def state(self, campaign: str, key: str) -> str | None:
        found = self.row(campaign, key)
        return None if found is None else str(found["state"])

    def claim(
        self,
        campaign: str,
        key: str,
        *,
        row: int,
        recipients: list[str],
        message_id: str,
        fingerprint: str,
        run: int,
        resend_unknown: bool = False,
        destination: str = "",
        rehearsal: bool = False,
    ) -> int | None:
        """Mark ``key`` as being sent by this run to ``destination`` (on disk before its data goes out).

        Returns its attempt number. A conditional update that only one run can
        win: a row accepted (except a rehearsal's, when this run is not one),
        ``unknown`` (unless ``resend_unknown`` or a rehearsal's) or being sent by
        another run is not claimed: None.
        """
        return self.claim_many(
            campaign,
            [dict(key=key, row=row, recipients=recipients, message_id=message_id)],
            fingerprint=fingerprint,
            run=run,
            resend_unknown=resend_unknown,
            destination=destination,
            rehearsal=rehearsal,
        )[0]

    def claim_many(
        self,
        campaign: str,
        rows: list[dict[str, Any]],
        *,
        fingerprint: str,
        run: int,
        resend_unknown: bool = False,
        destination: str = "",
        rehearsal: bool = False,
    ) -> list[int | None]:
        """``claim()`` each of ``rows`` (dicts of key, row, recipients, message_id) in one commit.

        One fsync for a window of rows instead of one per row. The price: after a
        kill, every row of the window is ``sending`` (so ``unknown``) even if only
        some of their data went out; the merge keeps the window small for that.
        """
        self.check_still_there()
        claimed: list[int | None] = []
        now = time.time()
        with self._guard():
            self._sync("FULL")
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(_RECORD, self._pending)
                for r in rows:
                    found = db.execute(
                        "INSERT INTO rows (campaign, key, row, state, recipients, message_id, attempts, fingerprint, "
                        "run, updated, owner, destination, rehearsal) "
                        "VALUES (?, ?, ?, 'sending', ?, ?, 1, ?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (campaign, key) DO UPDATE SET state = 'sending', row = excluded.row, "
                        "recipients = excluded.recipients, message_id = excluded.message_id, "
                        "attempts = attempts + 1, fingerprint = excluded.fingerprint, run = excluded.run, "
                        "updated = excluded.updated, owner = excluded.owner, destination = excluded.destination, "
                        "rehearsal = excluded.rehearsal "
                        "WHERE rows.state IN ('refused', 'failed') OR (rows.state = 'unknown' AND ?) "
                        "OR (rows.rehearsal AND NOT ? AND rows.state != 'sending') "
                        "RETURNING attempts",
                        (campaign, r["key"], r["row"], ", ".join(r["recipients"]), r["message_id"], fingerprint, run,
                         now, self.owner, destination, int(rehearsal), resend_unknown, rehearsal),
                    ).fetchone()  # fmt: skip
                    claimed.append(None if found is None else int(found["attempts"]))
                if time.monotonic() - self._heartbeat > _HEARTBEAT_SECONDS:  # a lease's sign of life, now and then
                    self._heartbeat = time.monotonic()
                    db.execute(
                        "UPDATE campaigns SET heartbeat = ? WHERE name = ? AND owner = ?",
                        (time.time(), campaign, self.owner),
                    )
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise
        self._pending.clear()
        return claimed

    def unclaim(self, campaign: str, keys: list[str]) -> None:
        """Undo this run's claim of ``keys``, whose data never went out: a new row is forgotten, an old one failed."""
        with self._guard():
            self._sync("NORMAL")
            for key in keys:
                self.db.execute(
                    "DELETE FROM rows WHERE campaign = ? AND key = ? AND owner = ? "
                    "AND state = 'sending' AND attempts = 1",
                    (campaign, key, self.owner),
                )
                self.db.execute(
                    "UPDATE rows SET state = 'failed', attempts = attempts - 1, reply = 'not sent: the run stopped', "
                    "updated = ? WHERE campaign = ? AND key = ? AND owner = ? AND state = 'sending'",
                    (time.time(), campaign, key, self.owner),
                )

    def record(
        self,
        campaign: str,
        key: str,
        state: str,
        *,
        code: int | None,
        reply: str,
        digest: str = "",
        later: bool = False,
    ) -> None:
        """Record the outcome of this run's last attempt of ``key`` (and, if accepted, the message's digest).

        ``later``: kept in memory and written in the same commit as the next
        claim (or by ``flush()``), so that a window of rows costs one commit, not
        one per row. Until then the row is ``sending`` on disk: a kill in between
        leaves it ``unknown``, as if its reply had not come, never resent. The
        rows that can be ``unknown`` stay those of one window.
        """
        values = (state, code, reply, time.time(), digest, campaign, key, self.owner)
        if later:
            self._pending.append(values)
            return
        with self._guard():
            self._sync("NORMAL")
            self.db.execute(_RECORD, values)

    def flush(self) -> None:
        """Write the outcomes recorded ``later`` that no claim has written yet, in one commit."""
        if not self._pending:
            return
        with self._guard():
            self._sync("NORMAL")
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(_RECORD, self._pending)
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise
        self._pending.clear()

    def rows(
        self, campaign: str, *, limit: int | None = None, offset: int = 0, failed_only: bool = False
    ) -> list[dict[str, Any]]:
        """The rows recorded for ``campaign``, in row order (``failed_only``: all but accepted)."""
        query = "SELECT * FROM rows WHERE campaign = ?" + (" AND state != 'accepted'" if failed_only else "")
        query += " ORDER BY row, key LIMIT ? OFFSET ?"
        with self._guard():
            return [dict(r) for r in self.db.execute(query, (campaign, -1 if limit is None else limit, offset))]

    def count(self, campaign: str) -> int:
        with self._guard():
            return int(self.db.execute("SELECT COUNT(*) FROM rows WHERE campaign = ?", (campaign,)).fetchone()[0])

    def counts(self, campaign: str) -> dict[str, int]:
        query = "SELECT state, COUNT(*) AS n FROM rows WHERE campaign = ? GROUP BY state"
        with self._guard():
            return {str(r["state"]): int(r["n"]) for r in self.db.execute(query, (campaign,))}


_RECORD = (
    "UPDATE rows SET state = ?, code = ?, reply = ?, updated = ?, digest = ? "
    "WHERE campaign = ? AND key = ? AND owner = ?"
)


def _abandoned(holder: str, heartbeat: float, now: float) -> bool:
    """A lease is abandoned when its process is gone (this machine) or silent for long (another machine)."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname():
        return now - heartbeat > _FOREIGN_LEASE_SECONDS
    if pid == str(os.getpid()):
        return holder not in _LIVE_OWNERS
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def _busy(path: str, campaign: str, holder: str) -> MergeBusy:
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    who = "this process" if pid == str(os.getpid()) and host == socket.gethostname() else f"process {pid} on {host}"
    return MergeBusy(
        f"another merge ({who}) is sending campaign {campaign!r} of the journal {path} right now, so nothing "
        "was sent: wait for it to finish and run this again (it then sends only what is left), or interrupt it"
    )
