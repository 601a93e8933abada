"""`kws-fleet status`: every node's state from the retained topics it already publishes.

A node keeps three retained topics current (see edge_node/mqtt): `availability`
(online/offline, also its last will), `status` (JSON: model, latency, uptime, ... every 5 s)
and `last_command` (JSON: the last detection). Subscribing to `kws/+/<topic>` therefore gives
the whole fleet at once and every change after, with standard MQTT only.

MQTT has no "end of retained messages"; the collector publishes a probe to its own topic after
subscribing and takes its return as "the backlog is in" (a broker delivers one session's
messages in order), with a time limit for brokers that do not.

A broker queues a subscription's whole retained backlog at once and drops what exceeds its
per-client queue (Mosquitto: `max_queued_messages`, 1000 by default, "Outgoing messages are
being dropped" in its log). So the topics are subscribed one at a time, each after the
previous backlog arrived: N nodes need a queue of N, not 3N (ha_config raises the limit for
larger fleets, and for Home Assistant's own discovery backlog).
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import paho.mqtt.client as mqtt

from edge_node.topics import AVAILABILITY, FLEET, LAST_COMMAND, ROOT, STATUS, node_id_of
from provisioning.broker import BrokerOptions, connect

TOPICS = (AVAILABILITY, STATUS, LAST_COMMAND)
MAX_TEXT = 64
"""Longest name, version or command shown from a node's payload."""


@dataclass
class NodeState:
    """What the fleet owner sees of one node."""

    node_id: str
    online: bool | None = None
    group: str = ""
    model_name: str = ""
    model_version: str = ""
    latency_ms: float | None = None
    uptime_s: float | None = None
    status_at: float | None = None
    last_command: str = ""
    last_confidence: float | None = None
    last_at: float | None = None
    updated_at: float = 0.0

    def uptime_now(self, now: float) -> float | None:
        """Uptime extrapolated from the last status (sent every few seconds) while online."""
        if self.uptime_s is None or self.status_at is None:
            return None
        return self.uptime_s + (now - self.status_at if self.online else 0.0)

    def as_json(self, now: float) -> dict[str, Any]:
        out = asdict(self)
        out["uptime_s"] = None if self.uptime_s is None else round(self.uptime_now(now) or 0)
        return out


def _number(value: Any) -> float | None:
    """A finite number from a payload, else None (JSON from anyone may hold NaN, Infinity or
    integers too big for a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _text(value: Any, default: str) -> str:
    return value[:MAX_TEXT] if isinstance(value, str) else default


class FleetStatus:
    """Subscribes to every node's retained topics and keeps a NodeState per node."""

    def __init__(self, options: BrokerOptions, extra_topics: Iterable[str] = (),
                 on_change: Callable[[NodeState, str], None] | None = None) -> None:
        self.nodes: dict[str, NodeState] = {}
        self.lock = threading.Lock()
        self.on_change = on_change
        self.handlers: dict[str, Callable[[mqtt.MQTTMessage], None]] = {}
        self.probe = f"{ROOT}/{FLEET}/probe/{uuid.uuid4().hex}"
        self.settled = threading.Event()
        self.subscriptions = [f"{ROOT}/+/{t}" for t in TOPICS] + list(extra_topics)
        self.stage = 0
        self.client = connect(options, "status")
        self.client.on_message = self._message
        self.client.on_connect = lambda *_: self._subscribe(0)
        self.client.on_subscribe = self._probe_stage
        self._subscribe(0)

    def _subscribe(self, stage: int) -> None:
        """Subscribe to the stage's topic (with the probe, first); its probe starts the next."""
        self.stage = stage
        if stage == 0:
            self.settled.clear()
            self.client.subscribe([(self.probe, 1), (self.subscriptions[0], 1)])
        elif stage < len(self.subscriptions):
            self.client.subscribe(self.subscriptions[stage], 1)
        else:
            self.settled.set()

    def _probe_stage(self, *_: object) -> None:
        """A subscription is acknowledged: the stage's probe, once back, starts the next."""
        self.client.publish(self.probe, str(self.stage), qos=1)

    def wait_settled(self, timeout: float) -> bool:
        """Wait until the retained backlog has arrived (True) or `timeout` passed."""
        return self.settled.wait(timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def snapshot(self) -> list[NodeState]:
        with self.lock:
            return [NodeState(**asdict(s)) for _, s in sorted(self.nodes.items())]

    def _message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self.probe:
            if msg.payload == str(self.stage).encode():
                self._subscribe(self.stage + 1)
            return
        node_id = node_id_of(msg.topic)
        if node_id is None:
            return
        key = msg.topic[len(ROOT) + len(node_id) + 2:]
        if key not in TOPICS:
            handler = self.handlers.get(key)
            if handler is not None:
                handler(msg)
            return
        with self.lock:
            state = self.nodes.get(node_id)
            if state is None:
                if not msg.payload:
                    return
                state = self.nodes[node_id] = NodeState(node_id)
            self._apply(state, key, bytes(msg.payload))
            state.updated_at = time.time()
        if self.on_change is not None:
            self.on_change(state, key)

    @staticmethod
    def _apply(state: NodeState, key: str, payload: bytes) -> None:
        if key == "availability":
            state.online = payload == b"online" if payload else None
            return
        try:
            body = json.loads(payload) if payload else {}
        except (ValueError, RecursionError):
            return
        if not isinstance(body, dict):
            return
        if key == "status":
            state.model_name = _text(body.get("model_name"), state.model_name)
            state.model_version = _text(body.get("model_version"), state.model_version)
            state.group = _text(body.get("group"), state.group)
            state.latency_ms = _number(body.get("latency_ms"))
            state.uptime_s = _number(body.get("uptime_s"))
            state.status_at = time.time()
        elif key == "last_command":
            state.last_command = _text(body.get("command"), "")
            state.last_confidence = _number(body.get("confidence"))
            state.last_at = _number(body.get("timestamp"))


def add_inventory(states: list[NodeState], groups: dict[str, str]) -> list[NodeState]:
    """Nodes of the inventory that never published appear too (online None: never seen);
    the inventory's group fills in for nodes that do not report one."""
    seen = {s.node_id: s for s in states}
    for node_id, group in groups.items():
        state = seen.setdefault(node_id, NodeState(node_id))
        state.group = state.group or group
    return [seen[k] for k in sorted(seen)]


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def table(states: list[NodeState], now: float) -> str:
    """A fixed-width table, one row per node, and a one-line summary."""
    head = ("NODE", "GROUP", "ONLINE", "MODEL", "LAST DETECTION", "LATENCY", "UPTIME")
    rows = []
    for s in states:
        online = {True: "yes", False: "NO", None: "never"}[s.online]
        model = " ".join(x for x in (s.model_name, s.model_version) if x) or "-"
        last = "-"
        if s.last_command:
            age = duration(now - s.last_at) + " ago" if s.last_at is not None else ""
            last = f"{s.last_command} {age}".strip()
        latency = f"{s.latency_ms:.1f} ms" if s.latency_ms is not None else "-"
        rows.append((s.node_id, s.group or "-", online, model, last, latency,
                     duration(s.uptime_now(now))))
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in (head, *rows)]
    online_count = sum(1 for s in states if s.online)
    lines.append(f"{len(states)} nodes, {online_count} online")
    return "\n".join(lines)


def as_json(states: list[NodeState], now: float) -> str:
    return json.dumps({"time": round(now, 3), "nodes": [s.as_json(now) for s in states]})
