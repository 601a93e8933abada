"""No detection lost: an on-disk outbox of detections, delivered in order, acked by QoS 1.

Every detection gets a per-node sequence number and is written to sqlite3 before it is sent;
its row is deleted only when the broker acknowledges it (paho's `on_publish`). After a
reconnect, or a restart of the node, all rows still waiting are sent again in sequence order
(paho also re-sends its own unacked copies, after ours). A detection can therefore arrive twice
but never not at all; consumers drop repeats by `seq`. The outbox is bounded: when full the
oldest are dropped.

paho calls back (connect, ack) while holding its own locks, and `put` holds ours while calling
paho, so callbacks never take our lock: they hand work to a worker thread through a lock-free
queue. Holding our lock across publish-and-record means the worker never sees an ack before
the message id it belongs to is recorded.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
from pathlib import Path
from typing import Any

from edge_node.mqtt.client import MqttConnection

log = logging.getLogger(__name__)

FLUSH = "flush"
STOP = "stop"


class DetectionQueue:
    """Sequence numbers, the sqlite outbox and ack tracking for `<base>/detection`."""

    def __init__(self, conn: MqttConnection, topic: str, path: Path, max_queued: int) -> None:
        self.conn = conn
        self.topic = topic
        self.max_queued = max_queued
        self._lock = threading.Lock()
        self._in_flight: dict[int, int] = {}
        self._live = False
        self._work: queue.SimpleQueue[int | str] = queue.SimpleQueue()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, "
                         "payload TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY "
                         "CHECK (id = 0), last_seq INTEGER NOT NULL)")
        self._db.execute("INSERT OR IGNORE INTO counter VALUES (0, 0)")
        conn.add_publish_listener(self._work.put)
        conn.add_connect_listener(lambda: self._work.put(FLUSH))
        conn.add_disconnect_listener(self._offline)
        self._worker = threading.Thread(target=self._work_loop, name="mqtt-queue", daemon=True)
        self._worker.start()

    def put(self, record: dict[str, Any]) -> int:
        """Store a detection (adding `seq`) and send it now if connected."""
        with self._lock:
            seq = self._db.execute("UPDATE counter SET last_seq = last_seq + 1 "
                                   "RETURNING last_seq").fetchone()[0]
            payload = json.dumps({**record, "seq": seq})
            self._db.execute("INSERT INTO outbox VALUES (?, ?)", (seq, payload))
            self._trim()
            if self._live:
                self._send(seq, payload)
        return seq

    def flush(self) -> None:
        """After a (re)connect: send every stored detection, oldest first, then go live."""
        with self._lock:
            if not self.conn.connected.is_set():
                return
            self._in_flight.clear()
            rows = self._db.execute("SELECT seq, payload FROM outbox ORDER BY seq").fetchall()
            for seq, payload in rows:
                self._send(seq, payload)
            self._live = True
        if rows:
            log.info("MQTT: sending %d queued detection(s)", len(rows))

    def close(self) -> None:
        self._work.put(STOP)
        self._worker.join(5)
        with self._lock:
            self._db.close()

    def _offline(self) -> None:
        self._live = False

    def _send(self, seq: int, payload: str) -> None:
        info = self.conn.publish(self.topic, payload, qos=1)
        self._in_flight[info.mid] = seq

    def _trim(self) -> None:
        excess = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] - self.max_queued
        if excess > 0:
            self._db.execute("DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox "
                             "ORDER BY seq LIMIT ?)", (excess,))
            log.warning("MQTT: detection queue full, dropped the %d oldest", excess)

    def _work_loop(self) -> None:
        while (item := self._work.get()) != STOP:
            if item == FLUSH:
                self.flush()
                continue
            with self._lock:
                seq = self._in_flight.pop(int(item), None)
                if seq is not None:
                    self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
