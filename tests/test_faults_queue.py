"""Detection-queue faults: a full, read-only or corrupt disk never costs a detection.

Real Mosquitto, real node processes (the MQTT wiring around a scripted agent), a real small
tmpfs that fills up. While the queue cannot be written, detections still go out live, seq
stays unique, and the fault shows in the log and on the `problem` diagnostic."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from edge_node.doctor import check_queue
from tests.support.mqtt_broker import Broker, Subscriber, broker  # noqa: F401
from tests.support.mqtt_node import ScriptedNode
from tests.support.small_fs import ext4_fs, fail_to_read_only, fill, small_fs

pytestmark = pytest.mark.integration

BASE = "kws/kitchen"


def detections(sub: Subscriber) -> list[dict]:
    """First arrival per seq, in order."""
    seen: dict[int, dict] = {}
    for m in sub.on(f"{BASE}/detection"):
        body = m.json()
        seen.setdefault(body["seq"], body)
    return list(seen.values())


def wait_detections(sub: Subscriber, count: int) -> list[dict]:
    return sub.wait_for(lambda _: len(detections(sub)) >= count and detections(sub), 15,
                        f"{count} detections")


def problem(sub: Subscriber, node: ScriptedNode, predicate) -> str:
    """The `problem` field of the node's status once `predicate` holds for it."""
    def check(_: list) -> str | None:
        statuses = [m.json() for m in sub.on(f"{BASE}/status")]
        return next((s["problem"] for s in reversed(statuses) if predicate(s["problem"])),
                    None)
    node.send("status")
    return sub.wait_for(check, 10, "status problem")


def start(folder: Path, broker: Broker, queue_dir: Path) -> tuple[ScriptedNode, Subscriber]:  # noqa: F811
    sub = Subscriber(broker, f"{BASE}/#")
    node = ScriptedNode(folder, {"host": "127.0.0.1", "port": broker.port,
                                "queue_dir": str(queue_dir)})
    sub.last(f"{BASE}/listening")
    return node, sub


def test_disk_full_detections_still_go_out_live_with_visible_unique_seqs(broker, tmp_path):  # noqa: F811
    with small_fs(tmp_path / "disk", 256) as disk:
        node, sub = start(tmp_path / "node", broker, disk)
        try:
            node.send("detect stop 0.9")
            assert [d["seq"] for d in wait_detections(sub, 1)] == [1]
            filler = fill(disk)
            for k in range(30):
                node.send(f"detect go 0.{50 + k}")
            got = wait_detections(sub, 31)
            assert [d["seq"] for d in got] == list(range(1, 32)), "none lost, none repeated"
            log = node.log_path.read_text()
            assert "detection queue cannot be written" in log and "full" in log
            assert "Traceback" not in log
            assert "full" in problem(sub, node, lambda p: p != "none")
            filler.unlink()
            node.send("detect left 0.8")
            assert wait_detections(sub, 32)[-1]["seq"] == 32
            assert problem(sub, node, lambda p: p == "none") == "none"
            assert "writable again" in node.log_path.read_text()
            assert node.alive()
        finally:
            node.stop()


def test_disk_full_at_start_the_node_runs_and_reports_it(broker, tmp_path):  # noqa: F811
    with small_fs(tmp_path / "disk", 128) as disk:
        fill(disk)
        node, sub = start(tmp_path / "node", broker, disk)
        try:
            node.send("detect stop 0.9")
            node.send("detect go 0.9")
            got = wait_detections(sub, 2)
            assert got[1]["seq"] == got[0]["seq"] + 1
            assert "cannot open" in problem(sub, node, lambda p: p != "none")
        finally:
            node.stop()


def test_read_only_queue_disk_detections_still_go_out(broker, tmp_path):  # noqa: F811
    with ext4_fs(tmp_path / "disk") as disk:
        node, sub = start(tmp_path / "node", broker, disk)
        try:
            node.send("detect stop 0.9")
            wait_detections(sub, 1)
            fail_to_read_only(disk)
            for _ in range(5):
                node.send("detect yes 0.7")
            assert [d["seq"] for d in wait_detections(sub, 6)] == list(range(1, 7))
            assert "cannot write" in problem(sub, node, lambda p: p != "none")
            assert "Traceback" not in node.log_path.read_text()
            assert node.alive()
        finally:
            node.stop()


def test_held_in_memory_while_disk_full_and_broker_away(tmp_path):
    """Broker away and disk full: detections wait in memory and go out after reconnecting."""
    mosq = Broker(tmp_path / "broker", persistence=True).start()
    try:
        with small_fs(tmp_path / "disk", 256) as disk:
            node, sub = start(tmp_path / "node", mosq, disk)
            sub.close()
            try:
                fill(disk)
                mosq.stop()
                for _ in range(4):
                    node.send("detect stop 0.9")
                mosq.start()
                late = Subscriber(mosq, f"{BASE}/detection")
                assert [d["seq"] for d in wait_detections(late, 4)] == [1, 2, 3, 4]
            finally:
                node.stop()
    finally:
        mosq.stop()


def corrupt(path: Path, kind: str) -> None:
    if kind == "garbage":
        path.write_bytes(b"this is not a database\n" * 200)
    elif kind == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2 + 100])
    else:
        path.unlink()
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE outbox (id TEXT, body BLOB)")


@pytest.mark.parametrize("kind", ["garbage", "truncated", "wrong_schema"])
def test_corrupt_queue_database_is_moved_aside_and_the_node_starts(broker, tmp_path, kind):  # noqa: F811
    queue_dir = tmp_path / "queue"
    node, sub = start(tmp_path / "node", broker, queue_dir)
    for _ in range(3):
        node.send("detect stop 0.9")
    before = [d["seq"] for d in wait_detections(sub, 3)]
    node.stop()
    path = queue_dir / "kitchen-queue.sqlite3"
    with sqlite3.connect(path) as db:  # grow it past one page so truncation cuts into data
        db.executemany("INSERT INTO outbox VALUES (?, ?)",
                       [(1000 + i, json.dumps({"pad": "x" * 500})) for i in range(20)])
    for extra in ("-wal", "-shm"):
        path.with_name(path.name + extra).unlink(missing_ok=True)
    corrupt(path, kind)
    node = ScriptedNode(tmp_path / "node", {"host": "127.0.0.1", "port": broker.port,
                                           "queue_dir": str(queue_dir)})
    try:
        node.send("detect go 0.9")
        after = sub.wait_for(lambda _: [d for d in detections(sub) if d["command"] == "go"],
                             15, "a detection after the restart")
        assert after[0]["seq"] > max(before), "no number handed out twice"
        assert list(queue_dir.glob("kitchen-queue.sqlite3.corrupt-*")), "kept for inspection"
        log = node.log_path.read_text()
        assert "is corrupt" in log and "Traceback" not in log
        node.send("detect go 0.8")
        seqs = [d["seq"] for d in detections(sub)]
        sub.wait_for(lambda _: len(detections(sub)) >= 5, 10)
        assert len(set(seqs)) == len(seqs)
        assert node.alive()
    finally:
        node.stop()


def test_doctor_reports_a_full_or_corrupt_queue(tmp_path):
    with small_fs(tmp_path / "disk", 4096) as disk:
        path = disk / "kitchen-queue.sqlite3"
        healthy = check_queue(path)
        assert healthy.ok is True and "0 detection(s) waiting" in healthy.detail
        filler = fill(disk)
        full = check_queue(path)
        assert full.ok is False and "free space" in full.fix, full
        filler.unlink()
        path.write_bytes(b"garbage" * 1000)
        corrupt = check_queue(path)
        assert corrupt.ok is False and "is corrupt" in corrupt.detail, corrupt
    assert check_queue(None).ok is None
