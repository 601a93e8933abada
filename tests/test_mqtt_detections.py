"""Detections and availability: payloads, last will on kill -9, clean offline, and the on-disk
queue that delivers every detection exactly once (by seq) and in order across broker outages
and node restarts."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest

from edge_node.config import DEFAULT_EXAMPLE
from tests.support.mqtt_broker import Broker, Subscriber, broker  # noqa: F401
from tests.support.mqtt_node import ScriptedNode

pytestmark = pytest.mark.integration

BASE = "kws/kitchen"
COMMANDS = ["stop", "go", "left", "yes"]


def first_arrivals(sub: Subscriber) -> list[dict]:
    """Detections deduplicated by seq, in order of first arrival."""
    seen: dict[int, dict] = {}
    for m in sub.on(f"{BASE}/detection"):
        body = m.json()
        seen.setdefault(body["seq"], body)
    return list(seen.values())


def pending(folder: Path) -> int:
    with sqlite3.connect(folder / "state" / "kitchen-queue.sqlite3") as db:
        return db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]


def wait_stored(folder: Path, last_seq: int, waiting: int, timeout: float = 10.0) -> None:
    """Until the node's queue worker has stored detection `last_seq` and `waiting` wait."""
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(folder / "state" / "kitchen-queue.sqlite3") as db:
            seq = db.execute("SELECT last_seq FROM counter").fetchone()[0]
        if (seq, pending(folder)) == (last_seq, waiting):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"queue at seq {seq} with {pending(folder)} waiting, not "
                        f"{last_seq} with {waiting}")
        time.sleep(0.02)


def wait_acked(folder: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while pending(folder):
        if time.monotonic() > deadline:
            pytest.fail("acknowledged detections were not removed from the queue")
        time.sleep(0.05)


def wait_logged(node: ScriptedNode, text: str, timeout: float = 15.0) -> None:
    """Until the node's log says `text`: e.g. that it noticed the broker going away, so what
    it is told next cannot leave in a send it believed live."""
    deadline = time.monotonic() + timeout
    while text not in node.log_path.read_text(errors="replace"):
        if time.monotonic() > deadline:
            pytest.fail(f"the node never logged {text!r}")
        time.sleep(0.05)


def wait_seqs(sub: Subscriber, count: int, timeout: float = 30.0) -> list[dict]:
    return sub.wait_for(lambda ms: len(first_arrivals(sub)) >= count and first_arrivals(sub),
                        timeout, f"{count} detections")


def test_a_detection_reaches_every_topic_with_its_payload(broker, tmp_path):  # noqa: F811
    node = ScriptedNode(tmp_path / "node", {"host": "127.0.0.1", "port": broker.port})
    try:
        sub = Subscriber(broker, f"{BASE}/#")
        sub.last(f"{BASE}/listening")
        before = time.time()
        node.send("detect left 0.875")
        detection = sub.last(f"{BASE}/detection")
        body = detection.json()
        assert set(body) == {"command", "confidence", "timestamp", "model_version", "node_id",
                             "seq"}
        assert (body["command"], body["confidence"], body["model_version"], body["node_id"],
                body["seq"]) == ("left", 0.875, "1.0.0", "kitchen", 1)
        assert before - 1 <= body["timestamp"] <= time.time() + 1
        assert not detection.retain
        event = sub.last(f"{BASE}/event").json()
        assert event == {"event_type": "left", "confidence": 0.875,
                         "timestamp": body["timestamp"], "seq": 1}
        trigger = sub.last(f"{BASE}/trigger/left").json()
        assert trigger["command"] == "left" and trigger["seq"] == 1
        sub.last(f"{BASE}/last_command")
        last = Subscriber(broker, f"{BASE}/last_command").last(f"{BASE}/last_command")
        assert last.retain and last.json()["command"] == "left"
        node.send("detect stop 0.9")
        assert sub.wait_for(lambda ms: [b["seq"] for b in first_arrivals(sub)] == [1, 2])
        node.send("status")
        status = sub.last(f"{BASE}/status").json()
        assert status["detections"] == 2 and status["model_version"] == "1.0.0"
        assert status["level_dbfs"] == -40.0 and status["latency_ms"] == 1.5
        assert status["model_name"] == "test-model" and status["group"] == ""
    finally:
        node.stop()


def test_kill_9_makes_the_last_will_say_offline(broker, tmp_path):  # noqa: F811
    node = ScriptedNode(tmp_path / "node", {"host": "127.0.0.1", "port": broker.port})
    sub = Subscriber(broker, f"{BASE}/availability")
    assert sub.last(f"{BASE}/availability").text == "online"
    node.kill()
    sub.wait_for(lambda ms: ms[-1].text == "offline", timeout=10, what="last will")
    retained = Subscriber(broker, f"{BASE}/availability").last(f"{BASE}/availability")
    assert retained.retain and retained.text == "offline"


def test_clean_shutdown_says_offline_retained(broker, tmp_path):  # noqa: F811
    node = ScriptedNode(tmp_path / "node", {"host": "127.0.0.1", "port": broker.port})
    sub = Subscriber(broker, f"{BASE}/availability")
    assert sub.last(f"{BASE}/availability").text == "online"
    assert node.stop() == 0
    sub.wait_for(lambda ms: ms[-1].text == "offline", timeout=5)
    assert "MQTT: connected" in node.log_path.read_text()


@pytest.fixture
def persistent_broker(tmp_path):
    """Keeps the subscriber's session over a graceful restart, like a real HA broker."""
    b = Broker(tmp_path / "broker", persistence=True).start()
    yield b
    b.stop()


def test_queued_detections_survive_a_node_restart_during_an_outage(persistent_broker,
                                                                   tmp_path):
    mosq = persistent_broker
    folder = tmp_path / "node"
    sub = Subscriber(mosq, f"{BASE}/detection", client_id="ha", persistent=True)
    node = ScriptedNode(folder, {"host": "127.0.0.1", "port": mosq.port})
    node.send("detect stop 0.9")
    wait_seqs(sub, 1)
    wait_acked(folder)
    mosq.stop(signal.SIGTERM)
    wait_logged(node, "MQTT: disconnected")
    node.send("detect go 0.8")
    node.send("detect left 0.7")
    wait_stored(folder, 3, 2)
    node.kill()
    node = ScriptedNode(folder, {"host": "127.0.0.1", "port": mosq.port})
    try:
        node.send("detect yes 0.95")
        wait_stored(folder, 4, 3)
        mosq.start()
        got = wait_seqs(sub, 4)
        assert [(b["seq"], b["command"]) for b in got] == list(enumerate(COMMANDS, 1))
        wait_acked(folder)
    finally:
        node.stop()


def test_every_detection_arrives_once_in_order_across_broker_restarts(persistent_broker,
                                                                       tmp_path):
    mosq = persistent_broker
    sub = Subscriber(mosq, f"{BASE}/detection", client_id="ha", persistent=True)
    folder = tmp_path / "node"
    node = ScriptedNode(folder, {"host": "127.0.0.1", "port": mosq.port})
    sent = []
    try:
        for outage in range(4):
            for i in range(15):
                command = COMMANDS[(outage + i) % 4]
                node.send(f"detect {command} 0.9")
                sent.append(command)
                time.sleep(0.02)
                if i == 7:
                    mosq.stop(signal.SIGTERM)
                if i == 11:
                    mosq.start()
        got = wait_seqs(sub, len(sent), timeout=60)
        assert [b["seq"] for b in got] == list(range(1, len(sent) + 1))
        assert [b["command"] for b in got] == sent
        assert node.alive()
        wait_acked(folder)
    finally:
        node.stop()


def test_demo_without_a_broker_brings_its_own_and_prints_what_ha_receives(tmp_path):
    """`edge-node run --source example` with no mqtt.host: embedded broker (or a local
    Mosquitto) and a monitor logging every message to stderr."""
    folder = tmp_path / "node"
    node = ScriptedNode(folder, {}, source=f"wav:{DEFAULT_EXAMPLE}")
    try:
        deadline = time.monotonic() + 20
        while "HA <- homeassistant/event/kitchen/command/config" not in node.log_path.read_text():
            assert time.monotonic() < deadline, node.log_path.read_text()[-2000:]
            time.sleep(0.1)
        node.send("detect yes 0.8")
        while '"command": "yes"' not in node.log_path.read_text():
            assert time.monotonic() < deadline, node.log_path.read_text()[-2000:]
            time.sleep(0.1)
    finally:
        assert node.stop() == 0
    text = node.log_path.read_text()
    assert "HA <- kws/kitchen/detection" in text
    assert "demo: embedded MQTT broker" in text or "demo: using the MQTT broker" in text


def test_a_full_queue_drops_the_oldest_detections(persistent_broker, tmp_path):
    mosq = persistent_broker
    folder = tmp_path / "node"
    sub = Subscriber(mosq, f"{BASE}/detection", client_id="ha", persistent=True)
    node = ScriptedNode(folder, {"host": "127.0.0.1", "port": mosq.port, "max_queued": 3})
    try:
        wait_logged(node, "MQTT: connected")
        mosq.stop(signal.SIGTERM)
        wait_logged(node, "MQTT: disconnected")
        for command in ["no", *COMMANDS]:
            node.send(f"detect {command} 0.9")
        wait_stored(folder, 5, 3)
        mosq.start()
        got = wait_seqs(sub, 3)
        wait_acked(folder)
        assert [(b["seq"], b["command"]) for b in got] == [(3, "go"), (4, "left"), (5, "yes")]
        assert "detection queue full" in node.log_path.read_text()
    finally:
        node.stop()
