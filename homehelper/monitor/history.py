"""The metrics history file: `<root>/history.sqlite`, two resolutions, written in batches.

Blocking SQLite work: one HistoryStore is used by one worker thread at a time (the history
actor runs every call under a capacity limiter of one). Rows are `(res, at, series, data)`:
`res` 0 is the fine resolution (one row per `step` seconds per series), 1 the coarse one (the
mean of each `coarse_step`, rebuilt from the fine rows at each write, so a restart in the
middle of a bucket loses nothing); `series` is `machine`, `app:<id>` or `redis`; `data` a
compact JSON object of figures. The key is ordered by time first, so a batch of new rows lands
on the last pages of the table and pruning frees the first ones: a write touches a few pages,
whatever the number of series, which is what keeps an SD card's writes small.

A file that is not ours (another program's database, garbage, a torn copy) is set aside as
`history.sqlite.corrupt-<time>` with its journal files and a new one is started: history is
worth keeping, never worth failing a start for.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..storage import set_aside

log = logging.getLogger(__name__)

APPLICATION_ID = 0x48484953  # "HHIS": marks the file as HomeHelper's history
SCHEMA = 1
FINE, COARSE = 0, 1
COMPANIONS = ("-wal", "-shm", "-journal")  # SQLite's own files beside the database
# Write-ahead log: benchmarks/diskwrites.py measured it at about 3/4 of a rollback journal's writes
# (a rollback journal copies each page before changing it; the log holds only the new pages, and
# a page changed by several batches reaches the file once per checkpoint). synchronous=NORMAL:
# a power cut may lose the last batch, never the file.
JOURNAL = "wal"

Row = tuple[int, str, dict[str, Any]]  # (at, series, figures)


class HistoryDamaged(Exception):
    """The file is not a history file of ours, or SQLite says it is damaged."""


def _round(v: float) -> float:
    return round(v, 2) if abs(v) < 1000 else round(v)


def mean_rows(rows: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """series -> the mean of each numeric figure over `rows` (figures missing or null are skipped)."""
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0]))
    for series, data in rows:
        acc = sums[series]
        for key, value in data.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                cell = acc[key]
                cell[0] += value
                cell[1] += 1
    return {series: {k: _round(s / n) for k, (s, n) in acc.items() if n} for series, acc in sums.items()}


class HistoryStore:
    """One history file. Every method blocks: call them from one worker thread at a time."""

    def __init__(self, path: Path, *, step: int = 30, coarse_step: int = 600, keep_fine: int = 86400,
                 keep_coarse: int = 30 * 86400, journal: str = JOURNAL) -> None:
        self.path = path
        self.step = step
        self.coarse_step = coarse_step
        self.keep_fine = keep_fine
        self.keep_coarse = keep_coarse
        self.journal = journal
        self.db: sqlite3.Connection | None = None
        self.set_aside_as: Path | None = None  # where a damaged file went, for the event
        self.damage: str | None = None  # what was wrong with it
        self.writes = 0  # transactions committed

    # --- opening -------------------------------------------------------------
    def open(self) -> None:
        """Open the file, or start a new one when it is not ours or damaged (set aside first).

        A file that cannot be opened at all (permissions, an I/O error, a full disk) raises: that is
        no reason to set it aside."""
        try:
            self.db = self._connect()
        except sqlite3.OperationalError:
            self.close()
            raise
        except (sqlite3.DatabaseError, HistoryDamaged) as exc:
            self.close()
            self.damage = str(exc) or type(exc).__name__
            self.set_aside_as = self._set_aside()
            log.warning("history: %s is unusable (%s); kept as %s, starting a new history",
                        self.path, self.damage, self.set_aside_as)
            self.db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise HistoryDamaged("not a regular file")  # a FIFO would hang SQLite's first read
        db = sqlite3.connect(self.path, timeout=1.0, check_same_thread=False, isolation_level=None)
        try:
            db.execute(f"PRAGMA journal_mode={self.journal}")
            db.execute("PRAGMA synchronous=" + ("NORMAL" if self.journal == "wal" else "FULL"))
            self._check_or_create(db)
        except BaseException:
            db.close()
            raise
        return db

    def _check_or_create(self, db: sqlite3.Connection) -> None:
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if app_id == 0 and not tables:  # a new (or empty) file
            db.executescript(f"""
                PRAGMA application_id={APPLICATION_ID};
                PRAGMA user_version={SCHEMA};
                CREATE TABLE samples(res INTEGER NOT NULL, at INTEGER NOT NULL, series TEXT NOT NULL,
                                     data TEXT NOT NULL, PRIMARY KEY (res, at, series)) WITHOUT ROWID;
            """)
            return
        if app_id != APPLICATION_ID:
            raise HistoryDamaged(f"another program's database (application_id {app_id:#x})")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA or "samples" not in tables:
            raise HistoryDamaged(f"an unknown layout (version {version}, tables {sorted(tables)})")
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise HistoryDamaged(f"SQLite finds it damaged: {check}")

    def _set_aside(self) -> Path | None:
        aside = None
        for suffix in ("", *COMPANIONS):
            p = self.path.with_name(self.path.name + suffix)
            if os.path.lexists(p):
                try:
                    moved = set_aside(p)
                except OSError as exc:  # cannot even rename it: take it away, history is not precious
                    log.warning("history: cannot set %s aside (%s); removing it", p, exc)
                    p.unlink(missing_ok=True)
                    continue
                aside = aside or moved
        return aside

    def close(self) -> None:
        if self.db is not None:
            try:
                self.db.close()
            finally:
                self.db = None

    # --- writing ------------------------------------------------------------
    def write(self, rows: list[Row], now: float) -> None:
        """Add fine rows, rebuild the coarse buckets they touch, drop what is past its keep: one transaction.

        A damaged file found here is set aside and the rows go into a new one.
        """
        try:
            self._write(rows, now)
        except sqlite3.OperationalError:
            raise  # a full disk, an I/O error: the caller keeps the rows and tries again later
        except sqlite3.DatabaseError as exc:
            log.warning("history: %s went bad while writing (%s); starting a new one", self.path, exc)
            self.close()
            self.damage = str(exc)
            self.set_aside_as = self._set_aside()
            self.db = self._connect()
            self._write(rows, now)

    def _write(self, rows: list[Row], now: float) -> None:
        db = self._require()
        buckets = sorted({at - at % self.coarse_step for at, _, _ in rows})
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR REPLACE INTO samples VALUES (0, ?, ?, ?)",
                           [(at, series, json.dumps(data, separators=(",", ":"))) for at, series, data in rows])
            for b in buckets:
                fine = db.execute("SELECT series, data FROM samples WHERE res=0 AND at>=? AND at<?",
                                  (b, b + self.coarse_step)).fetchall()
                means = mean_rows((s, json.loads(d)) for s, d in fine)
                db.executemany("INSERT OR REPLACE INTO samples VALUES (1, ?, ?, ?)",
                               [(b, s, json.dumps(m, separators=(",", ":"))) for s, m in means.items()])
            db.execute("DELETE FROM samples WHERE res=0 AND at<?", (int(now - self.keep_fine),))
            db.execute("DELETE FROM samples WHERE res=1 AND at<?", (int(now - self.keep_coarse),))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self.writes += 1

    def _require(self) -> sqlite3.Connection:
        if self.db is None:
            self.open()
        assert self.db is not None
        return self.db

    # --- reading ------------------------------------------------------------
    def read(self, series: str, since: float, res: int = FINE, until: float | None = None) -> list[tuple[int, dict]]:
        """(at, figures) of one series from `since` on, oldest first."""
        db = self._require()
        try:
            cur = db.execute("SELECT at, data FROM samples WHERE res=? AND at>=? AND at<=? AND series=? ORDER BY at",
                             (res, int(since), int(until if until is not None else 2**62), series))
            out = []
            for at, data in cur:
                try:
                    figures = json.loads(data)
                except ValueError:
                    continue  # one bad row is skipped, not the series
                if isinstance(figures, dict):
                    out.append((at, figures))
            return out
        except sqlite3.OperationalError:
            raise
        except sqlite3.DatabaseError as exc:
            raise HistoryDamaged(str(exc)) from exc

    def series(self, since: float) -> list[str]:
        """The series with coarse rows since `since` (every series written lately has one)."""
        db = self._require()
        return [r[0] for r in db.execute("SELECT DISTINCT series FROM samples WHERE res=1 AND at>=? ORDER BY series",
                                         (int(since),))]

    def size(self) -> int:
        return sum(p.stat().st_size for p in (self.path.with_name(self.path.name + s) for s in ("", *COMPANIONS))
                   if p.exists())


def sample_rows(sample: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The figures of one sensor sample the history keeps: the machine's, and each app's CPU and memory."""
    from .system import HISTORY_FIELDS, history_point

    machine = dict(zip(HISTORY_FIELDS, history_point(sample), strict=True))
    machine.pop("at")
    out: list[tuple[str, dict[str, Any]]] = [("machine", machine)]
    for app_id, fig in (sample.get("apps") or {}).items():
        if isinstance(fig, dict) and fig.get("source") != "absent":
            out.append((f"app:{app_id}", {"cpu": fig.get("cpu_percent"), "memory": fig.get("memory")}))
    return out


class Bucketer:
    """Samples into fine rows: the mean of every sample within one `step` (samples may come faster)."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.start: int | None = None
        self.samples: list[tuple[str, dict[str, Any]]] = []

    def add(self, at: float, rows: list[tuple[str, dict[str, Any]]]) -> list[Row]:
        """Take one sample's rows; returns the rows of the bucket this closed (if any)."""
        bucket = int(at) - int(at) % self.step
        closed: list[Row] = []
        if self.start is not None and bucket != self.start:  # later, or the clock was set back (a Pi has no RTC)
            closed = self.close()
        if self.start is None:
            self.start = bucket
        self.samples.extend(rows)
        return closed

    def current(self) -> list[Row]:
        """The open bucket's rows so far (what a chart shows as the newest point)."""
        if self.start is None:
            return []
        return [(self.start, s, m) for s, m in mean_rows(self.samples).items()]

    def close(self) -> list[Row]:
        rows = self.current()
        self.start, self.samples = None, []
        return rows
