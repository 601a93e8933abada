"""Bridges the agent's event hub to Home Assistant; the agent never hears of MQTT.

Detections go three ways: the reliable QoS 1 stream `<base>/detection` (queued on disk while
the broker is away), and - only while connected - the HA event entity, the device trigger and
the retained last-command sensor. Replaying old detections into HA automations after an outage
would fire "turn off the lights" minutes late, so those are live only.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_node import topics
from edge_node.events import Detected, ModelChanged, Status
from edge_node.mqtt import discovery
from edge_node.mqtt.client import MqttConnection
from edge_node.mqtt.controls import Controls, StateStore
from edge_node.mqtt.discovery import NodeInfo
from edge_node.mqtt.queue import DetectionQueue

if TYPE_CHECKING:
    from edge_node import topics
from edge_node.events import EventHub

log = logging.getLogger(__name__)

THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")


def cpu_temperature(path: Path = THERMAL) -> float | None:
    try:
        return round(int(path.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


def finite(value: float, floor: float = -120.0) -> float:
    """JSON has no infinities and HA rejects non-numeric sensor states (silence is -inf)."""
    return round(max(value, floor), 2) if math.isfinite(value) else floor


class MqttExtension:
    """Publishes discovery, detections, diagnostics and control states for one node."""

    def __init__(self, conn: MqttConnection, info: NodeInfo, hub: EventHub, store: StateStore,
                 controls: Controls, queue: DetectionQueue) -> None:
        self.conn = conn
        self.info = info
        self.store = store
        self.controls = controls
        self.queue = queue
        self.started = time.monotonic()
        self.last_status: dict[str, Any] | None = None
        hub.subscribe(Detected, self.on_detected)
        hub.subscribe(Status, self.on_status)
        hub.subscribe(ModelChanged, self.on_model_changed)
        controls.subscribe()
        conn.handle(f"{info.prefix}/status", self.on_ha_status)
        conn.add_connect_listener(self.announce)

    def announce(self) -> None:
        """Discovery, then states (retained: HA may subscribe a little after discovery)."""
        for topic in self.stale_topics():
            self.conn.publish(topic, "", qos=1, retain=True)
        for topic, payload in discovery.messages(self.info):
            self.conn.publish(topic, json.dumps(payload), qos=1, retain=True)
        self.store.set("announced_commands", list(self.info.commands))
        self.controls.publish_states()
        if self.last_status is not None:
            self.conn.publish(f"{self.info.base}/{topics.STATUS}", json.dumps(self.last_status),
                              qos=1, retain=True)
        log.info("MQTT: announced %d entities to Home Assistant",
                 len(discovery.entities(self.info)))

    def stale_topics(self) -> list[str]:
        """Device triggers of commands an earlier model had and this one lacks."""
        before = self.store.data.get("announced_commands", [])
        gone = [c for c in before if isinstance(c, str) and c not in self.info.commands]
        if gone:
            log.info("MQTT: removing triggers of commands no longer known: %s", ", ".join(gone))
        return discovery.removal_topics(self.info, gone)

    def on_ha_status(self, topic: str, payload: bytes) -> None:
        if payload.strip() == b"online":
            log.info("MQTT: Home Assistant (re)started; announcing again")
            self.conn.publish(self.conn.availability_topic, "online", qos=1, retain=True)
            self.announce()

    def on_model_changed(self, event: ModelChanged) -> None:
        """A new model (OTA): its commands and version go to Home Assistant at once."""
        model = event.model
        self.info = dataclasses.replace(self.info, model_name=model.name,
                                        model_version=model.version,
                                        labels=tuple(model.labels))
        if self.conn.connected.is_set():
            self.announce()

    def on_detected(self, event: Detected) -> None:
        d = event.detection
        record = {"command": d.label, "confidence": round(d.confidence, 4),
                  "timestamp": round(event.wall_time, 3), "model_version": event.model_version,
                  "node_id": self.info.node_id}
        seq = self.queue.put(record)
        if not self.conn.connected.is_set():
            return
        base = self.info.base
        live = {"confidence": record["confidence"], "timestamp": record["timestamp"],
                "seq": seq}
        self.conn.publish(f"{base}/{topics.EVENT}", json.dumps({"event_type": d.label, **live}))
        self.conn.publish(discovery.trigger_topic(self.info, d.label),
                          json.dumps({"command": d.label, **live}))
        self.conn.publish(f"{base}/{topics.LAST_COMMAND}", json.dumps({"command": d.label, **live}),
                          qos=1, retain=True)

    def on_status(self, event: Status) -> None:
        status: dict[str, Any] = {
            "latency_ms": finite(event.latency_ms, 0.0), "level_dbfs": finite(event.level_dbfs),
            "uptime_s": round(time.monotonic() - self.started), "detections": event.detections,
            "model_version": self.info.model_version, "listening": event.listening,
            "model_name": self.info.model_name, "group": self.info.group,
        }
        if self.info.has_thermal:
            status["cpu_temperature_c"] = cpu_temperature()
        self.last_status = status
        self.controls.sync()
        if self.conn.connected.is_set():
            self.conn.publish(f"{self.info.base}/{topics.STATUS}", json.dumps(status), qos=1,
                              retain=True)
