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
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_node import topics
from edge_node.events import (
    BrokerState,
    Detected,
    ModelChanged,
    NodeProblem,
    Status,
    Stopping,
)
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
REANNOUNCE_DELAY_S = 1.0
"""Home Assistant's `online` messages within this time after the first give one re-announce:
a flood of them must not bury the node in discovery messages."""
DRAIN_S = 5.0
"""How long stopping waits for the queue's worker to finish what it was handed (systemd's stop
timeout is 90 s; a node that cannot finish in time stops anyway, its detections on disk)."""


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
        self.hub = hub
        self.started = time.monotonic()
        self.hub = hub
        self.last_status: dict[str, Any] | None = None
        self.problems: dict[str, str] = {}
        self.instances = {conn.instance}
        """Processes seen publishing as this node_id (itself included)."""
        self._reannounce = threading.Lock()
        self._reannounce_due = False
        hub.subscribe(Detected, self.on_detected)
        hub.subscribe(Status, self.on_status)
        hub.subscribe(ModelChanged, self.on_model_changed)
        hub.subscribe(Stopping, self.on_stopping)
        controls.subscribe()
        conn.handle(f"{info.prefix}/status", self.on_ha_status)
        conn.handle(f"{info.base}/{topics.STATUS}", self.on_own_status, retained=False)
        conn.handle(f"{info.base}/{topics.LAST_COMMAND}", self.on_last_command)
        conn.handle(conn.availability_topic, self.on_availability, retained=False)
        conn.add_connect_listener(self.announce)
        conn.add_connect_listener(lambda: hub.publish(BrokerState(True)))
        conn.add_disconnect_listener(lambda: hub.publish(BrokerState(False)))
        queue.on_fault = lambda fault: self.on_problem("detection queue", fault)
        if queue.fault is not None:
            self.on_problem("detection queue", queue.fault)

    def start(self) -> None:
        """Until the connection is up, there is no broker (the screen says so)."""
        self.hub.publish(BrokerState(self.conn.connected.is_set()))

    def on_stopping(self, event: Stopping) -> None:
        """The final status (and any detection still being stored) goes out before the
        connection closes: a busy disk used to leave Home Assistant one detection behind."""
        if not self.queue.drain(DRAIN_S):
            log.warning("MQTT: outgoing work not finished %.0f s after stopping began", DRAIN_S)

    def stop(self) -> None:
        """Detections handed to the queue reach the disk before the node exits."""
        self.queue.close()

    def on_problem(self, key: str, message: str | None) -> None:
        """A fault appeared (`message`) or is over (None): log, OLED and the HA sensor."""
        if self.problems.get(key) == message:
            return
        if message is None:
            self.problems.pop(key, None)
        else:
            self.problems[key] = message
        self.hub.publish(NodeProblem(key, message))
        if self.last_status is not None:
            self.last_status["problem"] = self.problem_text()
            if self.conn.connected.is_set():
                self.conn.publish(f"{self.info.base}/{topics.STATUS}",
                                  json.dumps(self.last_status),
                                  qos=1, retain=True)

    def problem_text(self) -> str:
        return "; ".join(f"{k}: {m}" for k, m in sorted(self.problems.items())) or "none"

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
        """HA says `online` after its start: re-announce once per burst of such messages."""
        if payload.strip() != b"online":
            return
        with self._reannounce:
            if self._reannounce_due:
                return
            self._reannounce_due = True
        timer = threading.Timer(REANNOUNCE_DELAY_S, self._reannounce_now)
        timer.daemon = True
        timer.start()

    def _reannounce_now(self) -> None:
        with self._reannounce:
            self._reannounce_due = False
        if not self.conn.connected.is_set():
            return
        log.info("MQTT: Home Assistant (re)started; announcing again")
        self.conn.publish(self.conn.availability_topic, "online", qos=1, retain=True)
        self.announce()

    def on_availability(self, topic: str, payload: bytes) -> None:
        """A stale `offline` (the last will of an earlier connection of ours) while we are
        connected is corrected at once."""
        if payload.strip() == b"offline" and self.conn.connected.is_set() \
                and not self.conn.closing:
            self.conn.publish(self.conn.availability_topic, "online", qos=1, retain=True)

    def on_last_command(self, topic: str, payload: bytes) -> None:
        """Sequence numbers seen in use (ours from a run whose counter was lost, or another
        process's with our node_id) are never handed out again."""
        try:
            seq = json.loads(payload)["seq"]
        except (ValueError, TypeError, KeyError):
            return
        if isinstance(seq, int) and not isinstance(seq, bool) and seq > 0:
            self.queue.observe_seq(seq)

    def on_own_status(self, topic: str, payload: bytes) -> None:
        """A live status on our topic from another instance: two processes share node_id."""
        try:
            other = json.loads(payload).get("instance")
        except (ValueError, AttributeError):
            return
        if not isinstance(other, str) or not other or other in self.instances:
            return
        log.error("MQTT: another node (instance %s) publishes as node_id %s: give each node its "
                  "own node_id", other, self.info.node_id)
        self.instances.add(other)
        ordered = sorted(self.instances)
        self.queue.share(ordered.index(self.conn.instance), len(ordered))
        self.on_problem("duplicate_id", f"another node also uses node_id {self.info.node_id}")

    def on_model_changed(self, event: ModelChanged) -> None:
        """A new model (OTA): its commands and version go to Home Assistant at once."""
        model = event.model
        self.info = dataclasses.replace(self.info, model_name=model.name,
                                        model_version=model.version,
                                        labels=tuple(model.labels))
        if self.conn.connected.is_set():
            self.announce()

    def on_detected(self, event: Detected) -> None:
        """On the audio thread: only hands the detection to the queue's worker, which stores
        and sends it, then publishes the live messages (`publish_live`)."""
        d = event.detection
        record = {"command": d.label, "confidence": round(d.confidence, 4),
                  "timestamp": round(event.wall_time, 3), "model_version": event.model_version,
                  "node_id": self.info.node_id}
        self.queue.put(record, lambda seq: self.publish_live(record, seq))

    def publish_live(self, record: dict[str, Any], seq: int) -> None:
        """HA's event, device trigger and last command: only while connected (never late)."""
        if not self.conn.connected.is_set():
            return
        label, base = record["command"], self.info.base
        live = {"confidence": record["confidence"], "timestamp": record["timestamp"],
                "seq": seq}
        self.conn.publish(f"{base}/{topics.EVENT}", json.dumps({"event_type": label, **live}))
        self.conn.publish(discovery.trigger_topic(self.info, label),
                          json.dumps({"command": label, **live}))
        self.conn.publish(f"{base}/{topics.LAST_COMMAND}", json.dumps({"command": label, **live}),
                          qos=1, retain=True)

    def on_status(self, event: Status) -> None:
        """On the audio thread: the figures are taken here, saved and sent on the worker."""
        status: dict[str, Any] = {
            "latency_ms": finite(event.latency_ms, 0.0), "level_dbfs": finite(event.level_dbfs),
            "uptime_s": round(time.monotonic() - self.started), "detections": event.detections,
            "model_version": self.info.model_version, "listening": event.listening,
            "model_name": self.info.model_name, "group": self.info.group,
            "problem": self.problem_text(), "instance": self.conn.instance,
        }
        self.queue.defer(lambda: self.send_status(status))

    def send_status(self, status: dict[str, Any]) -> None:
        """On the queue's worker: add the temperature, sync the controls, publish."""
        if self.info.has_thermal:
            status["cpu_temperature_c"] = cpu_temperature()
        self.last_status = status
        self.controls.sync()
        if self.conn.connected.is_set():
            self.conn.publish(f"{self.info.base}/{topics.STATUS}", json.dumps(status), qos=1,
                              retain=True)
