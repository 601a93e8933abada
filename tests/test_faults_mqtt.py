"""Hostile MQTT: retained button presses, floods of Home Assistant's birth message and a
second node with the same node_id. Real Mosquitto, real node processes."""

from __future__ import annotations

import time

import pytest

from tests.support.mqtt_broker import Subscriber, broker  # noqa: F401
from tests.support.mqtt_node import ScriptedNode

pytestmark = pytest.mark.integration

BASE = "kws/kitchen"
CONFIGS = "homeassistant/+/kitchen/+/config"


def mqtt(broker) -> dict:  # noqa: F811
    return {"host": "127.0.0.1", "port": broker.port}


def test_retained_restart_press_is_ignored_not_a_restart_loop(broker, tmp_path):  # noqa: F811
    hostile = Subscriber(broker, "nothing/#")
    hostile.publish(f"{BASE}/restart/set", "PRESS", retain=True)
    node = ScriptedNode(tmp_path / "node", mqtt(broker))
    try:
        sub = Subscriber(broker, f"{BASE}/#")
        sub.last(f"{BASE}/listening")
        time.sleep(1.0)
        log = node.log_path.read_text()
        assert "ignored the retained message on kws/kitchen/restart/set" in log
        assert "restart requested" not in log
        assert node.alive() and node.settings()["listening"] is True
        hostile.publish(f"{BASE}/restart/set", "PRESS")
        assert node.read_line().split() == ["started", str(node.pid)], "a live press restarts"
        time.sleep(2.0)
        assert node.log_path.read_text().count("restart requested") == 1, "once, no loop"
    finally:
        node.stop()


def test_homeassistant_status_flood_gives_one_reannounce_and_the_node_keeps_up(
        broker, tmp_path):  # noqa: F811
    node = ScriptedNode(tmp_path / "node", mqtt(broker))
    try:
        sub = Subscriber(broker, CONFIGS, f"{BASE}/detection")
        sub.wait_for(lambda ms: len(ms) >= 15, 10, "discovery")
        time.sleep(0.5)
        entities = len(sub.messages)
        flood = Subscriber(broker, "nothing/#")
        for _ in range(500):
            flood.client.publish("homeassistant/status", "online", qos=0)
        flood.publish("homeassistant/status", "online")
        node.send("detect stop 0.9")
        sub.wait_for(lambda _: sub.on(f"{BASE}/detection"), 5, "a detection during the flood")
        time.sleep(2.0)
        configs = len([m for m in sub.messages if m.topic.endswith("/config")]) - entities
        assert entities <= configs <= 2 * entities, (configs, entities)
        assert node.log_path.read_text().count("Home Assistant (re)started") <= 2
        assert node.alive()
    finally:
        node.stop()


def test_two_nodes_with_one_node_id_report_it_stop_flapping_and_keep_seqs_unique(
        broker, tmp_path):  # noqa: F811
    sub = Subscriber(broker, f"{BASE}/#")
    first = ScriptedNode(tmp_path / "a", mqtt(broker))
    sub.last(f"{BASE}/listening")
    second = ScriptedNode(tmp_path / "b", mqtt(broker))
    try:
        def switched() -> bool:
            """One of them takes a client id of its own; then neither is dropped again."""
            return any("continuing as client id" in n.log_path.read_text()
                       for n in (first, second))
        deadline = time.monotonic() + 30
        while not switched():
            assert time.monotonic() < deadline, "the takeover loop went on"
            time.sleep(0.2)

        def both_reported() -> bool:
            return all("another node" in n.log_path.read_text() for n in (first, second))
        deadline = time.monotonic() + 20
        while not both_reported():  # a real node sends its status every 5 s
            assert time.monotonic() < deadline, "duplicate not reported by both"
            for node in (first, second):
                node.send("status")
            time.sleep(0.5)
        drops = [n.log_path.read_text().count("MQTT: disconnected") for n in (first, second)]
        statuses = [m.json() for m in sub.on(f"{BASE}/status")]
        assert any("another node also uses node_id kitchen" in s["problem"] for s in statuses)
        for k in range(8):
            (first if k % 2 else second).send(f"detect go 0.{60 + k}")
            time.sleep(0.02)  # far less than a round trip: only the shared residues help
        got = sub.wait_for(lambda _: len(sub.on(f"{BASE}/detection")) >= 8
                           and sub.on(f"{BASE}/detection"), 10, "8 detections")
        seqs = [m.json()["seq"] for m in got]
        assert len(set(seqs)) == 8, f"deduplicating by seq would drop some: {seqs}"
        time.sleep(3.0)
        assert [n.log_path.read_text().count("MQTT: disconnected")
                for n in (first, second)] == drops, "no more flapping"
        assert sub.on(f"{BASE}/availability")[-1].text == "online"
    finally:
        first.stop()
        second.stop()
