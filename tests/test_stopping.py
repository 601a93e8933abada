"""Stopping a node: the broker connection stops first (nothing arrives while the others stop),
so work still on the MQTT queue's worker, such as the final status, is finished before that,
on the `Stopping` event."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from edge_node.events import EventHub, Stopping
from edge_node.mqtt.client import MqttConnection
from edge_node.mqtt.queue import DetectionQueue
from edge_node.mqtt.settings import MqttSettings
from edge_node.node import Node

pytestmark = pytest.mark.unit


@pytest.fixture
def detection_queue(tmp_path):
    conn = MqttConnection(MqttSettings(host="127.0.0.1"), "kitchen")
    made = DetectionQueue(conn, "kws/kitchen/detection", tmp_path / "queue.db", 100)
    yield made
    made.close()


def test_drain_waits_for_the_work_handed_over_before_it(detection_queue):
    finished = []
    detection_queue.defer(lambda: (time.sleep(0.4), finished.append("status")))
    assert detection_queue.drain(5.0) is True
    assert finished == ["status"]


def test_drain_gives_up_on_a_stuck_worker_and_says_so(detection_queue):
    release = threading.Event()
    detection_queue.defer(release.wait)
    assert detection_queue.drain(0.2) is False
    release.set()


def test_the_node_announces_stopping_before_any_extension_stops():
    """MqttExtension drains its queue on `Stopping`: were it told after the connection
    stopped, the final status would go out on a closed connection."""
    hub, order = EventHub(), []
    hub.subscribe(Stopping, lambda event: order.append("stopping"))

    class Recorder:
        def __init__(self, name: str) -> None:
            self.name = name

        def start(self) -> None:
            """Nothing to start."""

        def stop(self) -> None:
            order.append(self.name)

    node = Node(SimpleNamespace(hub=hub), [Recorder("home assistant"), Recorder("connection")])
    node.stop()
    assert order == ["stopping", "connection", "home assistant"]
