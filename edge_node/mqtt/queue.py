"""No detection lost: an on-disk outbox of detections, delivered in order, acked by QoS 1.

Every detection gets a per-node sequence number and is written to sqlite3 before it is sent;
its row is deleted only when the broker acknowledges it (paho's `on_publish`). After a
reconnect, or a restart of the node, all rows still waiting are sent again in sequence order
(paho also re-sends its own unacked copies, after ours). A detection can therefore arrive twice
but never not at all; consumers drop repeats by `seq`. The outbox is bounded: when full the
oldest are dropped.

The disk can fail under it (full, read-only, corrupt). Then detections are still numbered and
sent live, and the ones not yet acknowledged are held in memory (same bound) instead; `fault`
says why, for the log and Home Assistant, and clears when a write succeeds again. A corrupt
database found at start is moved aside and a new one made. The counter lives in memory and only
ever grows: `observe_seq` raises it past numbers seen elsewhere (this node's retained last
command, another process with the same node_id), and once such processes know of each other
`share` gives each its own residue class, so their numbers never meet. When the saved counter
is lost (corrupt or unreadable database) it restarts from the Unix time in seconds: far above
any count a node reaches, so no number is handed out twice, and the jump shows the gap.

Nothing of this runs on the audio thread: `put` only hands the detection to the queue's worker
thread, which numbers, writes (flushed to the SD card) and sends it, and re-sends the outbox
after an outage; a new detection never waits for the disk or for a re-send in progress. paho
calls back (connect, ack) while holding its own locks, and the worker holds ours while calling
paho, so callbacks never take our lock: they hand work to the worker through the same
lock-free queue. Holding our lock across publish-and-record means the worker never sees an ack
before the message id it belongs to is recorded.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_node.mqtt.client import MqttConnection

log = logging.getLogger(__name__)

FLUSH = "flush"
STOP = "stop"
Job = Callable[[], None]
SCHEMA = {"outbox": ["seq", "payload"], "counter": ["id", "last_seq"]}
WAL_PAGES = 16
"""Write-ahead log pages (4 KB) after which they are folded into the database."""


class QueueStoreError(Exception):
    """The queue database cannot be used (its file is not a queue database)."""


def open_store(path: Path) -> sqlite3.Connection:
    """Open (or create) the queue database; a file that is not one raises QueueStoreError."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        # Fold the log into the database often and keep its file small: with the default
        # (4 MB) the log alone can fill a nearly full disk, and it can then never be folded.
        db.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
        db.execute(f"PRAGMA journal_size_limit={WAL_PAGES * 4096}")
        db.execute("CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, "
                   "payload TEXT NOT NULL)")
        db.execute("CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY "
                   "CHECK (id = 0), last_seq INTEGER NOT NULL)")
        check_store(db)
        db.execute("INSERT OR IGNORE INTO counter VALUES (0, 0)")
    except sqlite3.DatabaseError as exc:
        db.close()
        if isinstance(exc, sqlite3.OperationalError) and not _is_corruption(exc):
            raise
        raise QueueStoreError(str(exc)) from exc
    except QueueStoreError:
        db.close()
        raise
    return db


def check_store(db: sqlite3.Connection) -> int:
    """Detections waiting in an open queue database; QueueStoreError if it is not one."""
    for table, columns in SCHEMA.items():
        found = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
        if found != columns:
            raise QueueStoreError(f"table {table} has columns {found}, expected {columns}")
    check = db.execute("PRAGMA quick_check").fetchone()[0]
    if check != "ok":
        raise QueueStoreError(f"integrity check failed: {check}")
    return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


def inspect_store(path: Path) -> int:
    """Detections waiting in the queue at `path`, read-only (for `edge-node doctor`)."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise QueueStoreError(str(exc)) from exc
    try:
        return check_store(db)
    except sqlite3.DatabaseError as exc:
        raise QueueStoreError(str(exc)) from exc
    finally:
        db.close()


def _is_corruption(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return any(w in text for w in ("malformed", "not a database", "corrupt", "no such column"))


def move_aside(path: Path) -> Path:
    """Keep a corrupt database for inspection, out of the way of a new one."""
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    path.rename(aside)
    for suffix in ("-wal", "-shm"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            extra.rename(aside.with_name(aside.name + suffix))
    return aside


class DetectionQueue:
    """Sequence numbers, the sqlite outbox and ack tracking for `<base>/detection`."""

    def __init__(self, conn: MqttConnection, topic: str, path: Path, max_queued: int) -> None:
        self.conn = conn
        self.topic = topic
        self.path = path
        self.max_queued = max_queued
        self.fault: str | None = None
        """Why the outbox cannot be written now (None: it can)."""
        self.on_fault: Callable[[str | None], None] = lambda _: None
        """Told when `fault` changes (set by whoever reports it)."""
        self._lock = threading.Lock()
        self._in_flight: dict[int, int] = {}
        self._held: dict[int, str] = {}
        """Detections not on disk (it failed), oldest first, until acknowledged."""
        self._live = False
        self._share = (0, 1)
        self._work: queue.SimpleQueue[int | str | Job] = queue.SimpleQueue()
        self._counter_lost = False
        self._db = self._open()
        self._seq = self._stored_seq()
        conn.add_publish_listener(self._work.put)
        conn.add_connect_listener(lambda: self._work.put(FLUSH))
        conn.add_disconnect_listener(self._offline)
        self._worker = threading.Thread(target=self._work_loop, name="mqtt-queue", daemon=True)
        self._worker.start()

    def _open(self) -> sqlite3.Connection | None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                return open_store(self.path)
            except QueueStoreError as exc:
                aside = move_aside(self.path)
                self._counter_lost = True
                log.error("MQTT: detection queue %s is corrupt (%s); moved it to %s and started "
                          "a new one", self.path, exc, aside.name)
                return open_store(self.path)
        except (OSError, sqlite3.Error, QueueStoreError) as exc:
            self._set_fault(f"cannot open {self.path}: {exc}")
            return None

    def _stored_seq(self) -> int:
        lost = int(time.time())
        if self._db is None or self._counter_lost:
            return lost
        try:
            last = self._db.execute("SELECT last_seq FROM counter").fetchone()[0]
            top = self._db.execute("SELECT MAX(seq) FROM outbox").fetchone()[0] or 0
            return max(int(last), int(top))
        except sqlite3.Error as exc:
            self._set_fault(f"cannot read {self.path}: {exc}")
            return lost

    def _set_fault(self, fault: str | None) -> None:
        if fault == self.fault:
            return
        if fault is None:
            log.warning("MQTT: detection queue is writable again (%d held in memory)",
                        len(self._held))
        else:
            log.error("MQTT: detection queue cannot be written (%s); sending live and holding "
                      "up to %d detections in memory", fault, self.max_queued)
        self.fault = fault
        self.on_fault(fault)

    @property
    def last_seq(self) -> int:
        return self._seq

    def observe_seq(self, seq: int) -> None:
        """Never hand out `seq` or anything below it (it was seen in use)."""
        with self._lock:
            self._seq = max(self._seq, seq)

    def share(self, index: int, count: int) -> None:
        """`count` processes publish under this node_id: take only numbers that are `index`
        modulo `count`, so no two of them ever use the same one (each skips the others')."""
        with self._lock:
            self._share = (index, count)

    def _next_seq(self) -> int:
        index, count = self._share
        self._seq += 1
        self._seq += (index - self._seq) % count
        return self._seq

    def put(self, record: dict[str, Any], stored: Callable[[int], None] | None = None) -> None:
        """Hand a detection to the worker, which numbers it, stores it (on disk, else in
        memory), sends it if connected, then calls `stored(seq)`. Returns at once."""
        self._work.put(lambda: self._put(record, stored))

    def defer(self, job: Job) -> None:
        """Run `job` on the worker, after everything handed over before it."""
        self._work.put(job)

    def _put(self, record: dict[str, Any], stored: Callable[[int], None] | None) -> None:
        with self._lock:
            seq = self._next_seq()
            payload = json.dumps({**record, "seq": seq})
            if not self._store(seq, payload):
                self._held[seq] = payload
                self._trim_held()
            if self._live:
                self._send(seq, payload)
        if stored is not None:
            stored(seq)

    def _store(self, seq: int, payload: str) -> bool:
        if self._db is None:
            self._db = self._open()
            if self._db is None:
                return False
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("UPDATE counter SET last_seq = MAX(last_seq, ?)", (seq,))
            self._db.execute("INSERT INTO outbox VALUES (?, ?)", (seq, payload))
            self._trim()
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self._set_fault(f"cannot write {self.path}: {exc}")
            return False
        self._set_fault(None)
        return True

    def flush(self) -> None:
        """After a (re)connect: send every stored detection, oldest first, then go live."""
        with self._lock:
            if not self.conn.connected.is_set():
                return
            self._in_flight.clear()
            rows = dict(self._held)
            if self._db is not None:
                try:
                    rows.update(self._db.execute("SELECT seq, payload FROM outbox").fetchall())
                except sqlite3.Error as exc:
                    self._set_fault(f"cannot read {self.path}: {exc}")
            for seq in sorted(rows):
                self._send(seq, rows[seq])
            self._live = True
        if rows:
            log.info("MQTT: sending %d queued detection(s)", len(rows))

    def drain(self, timeout: float) -> bool:
        """Wait until the work handed over so far is done; False if it took over `timeout`."""
        done = threading.Event()
        self._work.put(done.set)
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Finish the work handed over so far (detections reach the disk), then stop."""
        self._work.put(STOP)
        self._worker.join(timeout)
        with self._lock:
            if self._db is not None:
                self._db.close()

    def _offline(self) -> None:
        self._live = False

    def _send(self, seq: int, payload: str) -> None:
        info = self.conn.publish(self.topic, payload, qos=1)
        self._in_flight[info.mid] = seq

    def _trim(self) -> None:
        assert self._db is not None
        excess = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] - self.max_queued
        if excess > 0:
            self._db.execute("DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox "
                             "ORDER BY seq LIMIT ?)", (excess,))
            log.warning("MQTT: detection queue full, dropped the %d oldest", excess)

    def _trim_held(self) -> None:
        excess = len(self._held) - self.max_queued
        for seq in list(self._held)[:max(0, excess)]:
            del self._held[seq]
        if excess > 0:
            log.warning("MQTT: detection queue in memory full, dropped the %d oldest", excess)

    def _ack(self, seq: int) -> None:
        if self._held.pop(seq, None) is not None or self._db is None:
            return
        try:
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
        except sqlite3.Error as exc:
            # The row stays and is sent again after a reconnect: a repeat, not a loss.
            log.warning("MQTT: could not remove acknowledged detection %d: %s", seq, exc)

    def _work_loop(self) -> None:
        while (item := self._work.get()) != STOP:
            if item == FLUSH:
                self.flush()
                continue
            if callable(item):
                try:
                    item()
                except Exception:
                    log.exception("MQTT: detection queue job failed")
                continue
            with self._lock:
                seq = self._in_flight.pop(int(item), None)
                if seq is not None:
                    self._ack(seq)
