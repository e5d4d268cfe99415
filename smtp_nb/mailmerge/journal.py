"""The merge journal: an SQLite file that remembers, per campaign and row key, what happened.

A row is marked ``sending`` (and the mark is on disk) before its data goes
out, then recorded ``accepted``, ``refused``, ``failed`` (never accepted,
retries spent) or ``unknown`` (the data went out but the verdict did not come
back). A row still ``sending`` when a merge starts belongs to a run that died:
it becomes ``unknown``, and is not sent again unless asked.

WAL mode. The ``sending`` mark is committed with ``synchronous=FULL`` (it
survives a killed process and a power cut); outcomes with ``NORMAL``, because
losing one can only turn it into ``unknown`` — never into a second send — and
the next FULL commit makes it durable anyway.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["DEFAULT_JOURNAL", "Journal", "TemplateChanged"]

DEFAULT_JOURNAL = "smtp_nb-journal.sqlite"

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


class TemplateChanged(RuntimeError):
    """The template changed since rows of this campaign were accepted: nothing was sent."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class Journal:
    """One journal file (``":memory:"`` for a throwaway one)."""

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_JOURNAL) -> None:
        self.path = os.fspath(path)
        if self.path != ":memory:":
            self.path = os.path.abspath(self.path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._synchronous = ""
        self._sync("FULL")

    def _sync(self, level: str) -> None:
        if level != self._synchronous:
            self._db.execute(f"PRAGMA synchronous={level}")
            self._synchronous = level

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- campaigns -------------------------------------------------------------------

    def begin(self, campaign: str, fingerprint: str, *, continue_changed: bool = False) -> tuple[int, list[str]]:
        """Start a run of ``campaign``; return (run number, keys left ``sending`` by a run that died).

        Raises ``TemplateChanged`` if rows were accepted with another template
        and ``continue_changed`` is false.
        """
        now = time.time()
        found = self._db.execute("SELECT fingerprint, runs FROM campaigns WHERE name = ?", (campaign,)).fetchone()
        if found is None:
            self._db.execute("INSERT INTO campaigns VALUES (?, ?, ?, 0)", (campaign, fingerprint, now))
        elif found["fingerprint"] != fingerprint:
            accepted = self._db.execute(
                "SELECT COUNT(*) FROM rows WHERE campaign = ? AND state = 'accepted'", (campaign,)
            ).fetchone()[0]
            if accepted and not continue_changed:
                raise TemplateChanged(
                    f"the template changed since {accepted} row(s) of campaign {campaign!r} were accepted, "
                    "so nothing was sent. To send everyone the new version, start a new campaign "
                    "(--campaign NEW / campaign='new'); to send only the remaining rows with the new "
                    "template, continue this one (--continue / continue_changed=True)"
                )
            self._db.execute("UPDATE campaigns SET fingerprint = ? WHERE name = ?", (fingerprint, campaign))
        self._db.execute("UPDATE campaigns SET runs = runs + 1 WHERE name = ?", (campaign,))
        run = self._db.execute("SELECT runs FROM campaigns WHERE name = ?", (campaign,)).fetchone()[0]
        died = [
            r["key"]
            for r in self._db.execute("SELECT key FROM rows WHERE campaign = ? AND state = 'sending'", (campaign,))
        ]
        if died:
            self._db.execute(
                "UPDATE rows SET state = 'unknown', reply = 'the run sending it stopped before the server answered', "
                "updated = ? WHERE campaign = ? AND state = 'sending'",
                (now, campaign),
            )
        return int(run), died

    # -- rows ---------------------------------------------------------------------------

    def start_key_check(self) -> None:
        """Forget the keys seen so far (a temporary table: duplicate detection without holding every key in memory)."""
        self._db.execute("CREATE TEMP TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, row INTEGER NOT NULL)")
        self._db.execute("DELETE FROM temp.seen")

    def seen_before(self, key: str, row: int) -> int | None:
        """The row that already had ``key``, or None (and ``key`` is remembered for ``row``)."""
        found = self._db.execute("SELECT row FROM temp.seen WHERE key = ?", (key,)).fetchone()
        if found is not None:
            return int(found["row"])
        self._db.execute("INSERT INTO temp.seen VALUES (?, ?)", (key, row))
        return None

    def state(self, campaign: str, key: str) -> str | None:
        found = self._db.execute("SELECT state FROM rows WHERE campaign = ? AND key = ?", (campaign, key)).fetchone()
        return None if found is None else str(found["state"])

    def mark_sending(
        self, campaign: str, key: str, *, row: int, recipients: list[str], message_id: str, fingerprint: str, run: int
    ) -> int:
        """Record on disk that ``key`` is about to be sent; return its attempt number."""
        self._sync("FULL")
        found = self._db.execute(
            "INSERT INTO rows (campaign, key, row, state, recipients, message_id, attempts, fingerprint, run, updated) "
            "VALUES (?, ?, ?, 'sending', ?, ?, 1, ?, ?, ?) "
            "ON CONFLICT (campaign, key) DO UPDATE SET state = 'sending', row = excluded.row, "
            "recipients = excluded.recipients, message_id = excluded.message_id, attempts = attempts + 1, "
            "fingerprint = excluded.fingerprint, run = excluded.run, updated = excluded.updated "
            "RETURNING attempts",
            (campaign, key, row, ", ".join(recipients), message_id, fingerprint, run, time.time()),
        ).fetchone()
        return int(found["attempts"])

    def record(self, campaign: str, key: str, state: str, *, code: int | None, reply: str) -> None:
        """Record the outcome of the last attempt of ``key``."""
        self._sync("NORMAL")
        self._db.execute(
            "UPDATE rows SET state = ?, code = ?, reply = ?, updated = ? WHERE campaign = ? AND key = ?",
            (state, code, reply, time.time(), campaign, key),
        )

    def rows(
        self, campaign: str, *, limit: int | None = None, offset: int = 0, failed_only: bool = False
    ) -> Iterator[dict[str, Any]]:
        """The rows recorded for ``campaign``, in row order (``failed_only``: all but accepted)."""
        query = "SELECT * FROM rows WHERE campaign = ?" + (" AND state != 'accepted'" if failed_only else "")
        query += " ORDER BY row, key LIMIT ? OFFSET ?"
        for found in self._db.execute(query, (campaign, -1 if limit is None else limit, offset)):
            yield dict(found)

    def count(self, campaign: str) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM rows WHERE campaign = ?", (campaign,)).fetchone()[0])

    def counts(self, campaign: str) -> dict[str, int]:
        query = "SELECT state, COUNT(*) AS n FROM rows WHERE campaign = ? GROUP BY state"
        return {str(r["state"]): int(r["n"]) for r in self._db.execute(query, (campaign,))}
