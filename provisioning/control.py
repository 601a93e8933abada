"""`kws-fleet set KEY VALUE`: change a setting on one node, a group or the whole fleet through
the same command topics Home Assistant uses (`kws/<id>/<key>/set`).

Each node validates, applies and persists the value itself and answers with its new state
(`kws/<id>/<key>`) or an error (`kws/<id>/error`); the answers are collected so the fleet owner
sees which nodes took the change. Offline nodes are skipped: a command topic is not retained,
so they would never see it.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from edge_node.mqtt import discovery
from edge_node.topics import ERROR, ROOT, node_base, set_topic
from provisioning.broker import BrokerOptions
from provisioning.inventory import InventoryError
from provisioning.progress import bar
from provisioning.status import FleetStatus, NodeState, add_inventory


def settable() -> dict[str, bool]:
    """Keys with a command topic, from the node's own discovery (key -> has a state topic)."""
    info = discovery.NodeInfo("n", "n", node_base("n"), "homeassistant", "", "", ())
    out = {}
    for payload in discovery.entities(info).values():
        command = payload.get("command_topic")
        if command:
            out[command.split("/")[2]] = "state_topic" in payload
    return out


@dataclass(frozen=True)
class Answer:
    """One node's outcome: ok (value = its new state), error, offline, unknown or no answer."""

    node_id: str
    outcome: str
    detail: str = ""


def targets(states: list[NodeState], node: str | None, group: str | None) -> list[NodeState]:
    if node is not None:
        return [s for s in states if s.node_id == node] or [NodeState(node)]
    if group is not None:
        return [s for s in states if s.group == group]
    return states


def set_setting(options: BrokerOptions, key: str, value: str, *, node: str | None = None,
                group: str | None = None, groups: dict[str, str] | None = None,
                timeout: float = 10.0, settle_s: float = 5.0) -> list[Answer]:
    """Send `value` to the chosen nodes (all when node and group are None) and collect their
    answers. `groups` (node id -> group, from the inventory) adds nodes' groups."""
    keys = settable()
    if key not in keys:
        raise InventoryError(f"unknown setting {key!r} (known: {', '.join(sorted(keys))})")
    answers: dict[str, Answer] = {}
    cond = threading.Condition()
    sent: set[str] = set()

    def answer(node_id: str, outcome: str, detail: str) -> None:
        with cond:
            if node_id in sent and node_id not in answers:
                answers[node_id] = Answer(node_id, outcome, detail)
                cond.notify_all()

    def on_state(msg: mqtt.MQTTMessage) -> None:
        if not msg.retain:
            answer(msg.topic.split("/")[1], "ok", msg.payload.decode("utf-8", "replace"))

    def on_error(msg: mqtt.MQTTMessage) -> None:
        node_id = msg.topic.split("/")[1]
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        if isinstance(body, dict) and body.get("topic") == set_topic(node_base(node_id), key):
            answer(node_id, "error", str(body.get("error", "")))

    fleet = FleetStatus(options, extra_topics=[f"{ROOT}/+/{key}", f"{ROOT}/+/{ERROR}"])
    fleet.handlers.update({key: on_state, ERROR: on_error})
    try:
        fleet.wait_settled(settle_s)
        states = add_inventory(fleet.snapshot(), groups or {})
        chosen = targets(states, node, group)
        results = [Answer(s.node_id, "offline" if s.online is False else "unknown")
                   for s in chosen if not s.online]
        online = [s.node_id for s in chosen if s.online]
        with cond:
            sent.update(online)
        for node_id in online:
            fleet.client.publish(set_topic(node_base(node_id), key), value, qos=1)
        if not keys[key]:
            return results + [Answer(n, "sent") for n in online]
        shown = bar(len(online), f"set {key}")
        deadline = time.monotonic() + timeout
        with cond:
            while len(answers) < len(online) and time.monotonic() < deadline:
                done = len(answers)
                cond.wait(min(0.5, deadline - time.monotonic()))
                shown.update(len(answers) - done)
            got = dict(answers)
        shown.close()
        return results + [got.get(n, Answer(n, "no answer")) for n in online]
    finally:
        fleet.close()
