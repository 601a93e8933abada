"""`kws-fleet push-model`: publish a signed package in chunks and wait for every node's result.

The offer and its chunks are published retained at the target scope (`kws/<node>/model`,
`kws/_group/<g>/model` or `kws/_fleet/model`), so nodes that are offline now install when
they return and Home Assistant's install button works after the pusher has gone. Before that,
the chunks of the scope's previous offer are cleared (empty retained messages), so the broker
holds one model per scope. While waiting, the pusher re-publishes chunks a node asks for on
`kws/<node>/model/request`.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml

from edge_node.ota.package import Package
from edge_node.ota.transfer import Offer
from edge_node.topics import (
    AVAILABILITY,
    MODEL,
    MODEL_STATUS,
    OFFER,
    REQUEST,
    ROOT,
    chunk_topic,
    fleet_model,
    group_model,
    node_id_of,
    offer_topic,
)
from provisioning.broker import BrokerOptions, connect
from provisioning.progress import bar

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 64 * 1024
FAILED = ("failed", "rolled-back")
RESEND_GAP_S = 1.0
"""A chunk re-sent less than this long ago is not re-sent again for another request."""


@dataclass(frozen=True)
class NodeResult:
    """One targeted node's outcome."""

    node_id: str
    ok: bool
    detail: str


def scope_for(node: str | None = None, group: str | None = None) -> str:
    if node:
        return f"{ROOT}/{node}/model"
    return group_model(group) if group else fleet_model()


def inventory_nodes(path: Path, group: str | None = None) -> set[str]:
    """Node ids of an inventory YAML (`nodes:` list of {id, group, ...}), optionally one group."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(nodes, list):
        raise ValueError(f"{path}: expected a `nodes:` list")
    return {str(n["id"]) for n in nodes if isinstance(n, dict) and "id" in n
            and (group is None or n.get("group") == group)}


class Pusher:
    """One MQTT connection of the fleet owner; watches every node's model status."""

    def __init__(self, options: BrokerOptions) -> None:
        self.client = connect(options, "push")
        self._lock = threading.Condition()
        self.statuses: dict[str, dict[str, Any]] = {}
        self.online: dict[str, bool] = {}
        self.retained_offer: dict[str, bytes] = {}
        self.serving: dict[str, tuple[Offer, bytes]] = {}
        self.resent = 0
        self._sent_at: dict[tuple[str, int], float] = {}
        self.client.on_message = self._message
        self._subscribe([f"{ROOT}/+/{MODEL_STATUS}", f"{ROOT}/+/{AVAILABILITY}",
                         f"{ROOT}/+/{MODEL}/{REQUEST}"])

    def _subscribe(self, topics: Iterable[str]) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_: done.set()
        self.client.subscribe([(t, 1) for t in topics])
        if not done.wait(10):
            raise TimeoutError("the broker did not acknowledge the subscription")

    def _message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        topic = msg.topic
        if topic.endswith(f"/{OFFER}"):
            with self._lock:
                self.retained_offer[topic] = bytes(msg.payload)
            return
        node = node_id_of(topic)
        if node is None:
            return
        if topic.endswith(f"/{MODEL}/{REQUEST}"):
            self._resend(bytes(msg.payload))
            return
        with self._lock:
            if topic.endswith(f"/{AVAILABILITY}"):
                self.online[node] = msg.payload == b"online"
            else:
                try:
                    status = json.loads(msg.payload)
                except ValueError:
                    return
                if isinstance(status, dict):
                    self.statuses[node] = status
            self._lock.notify_all()

    def discover(self, settle_s: float = 1.5, group: str | None = None) -> set[str]:
        """Online nodes known from retained availability and model status (of `group`)."""
        time.sleep(settle_s)
        with self._lock:
            return {n for n, up in self.online.items() if up and n in self.statuses
                    and (group is None or self.statuses[n].get("group") == group)}

    # --- publishing -----------------------------------------------------------------------

    def offer_for(self, package: Package, scope: str, chunk_size: int = DEFAULT_CHUNK,
                  auto_install: bool = True, summary: str = "") -> Offer:
        size = len(package.model)
        return Offer(transfer=secrets.token_hex(8), manifest=package.manifest,
                     signature=package.signature, size=size, chunk_size=chunk_size,
                     chunks=math.ceil(size / chunk_size), auto_install=auto_install,
                     pushed_at=time.time(), scope=scope,
                     release_summary=summary or f"{package.manifest['name']} "
                                                f"{package.manifest['version']}")

    def previous_offer(self, scope: str, wait_s: float = 0.5) -> dict[str, Any] | None:
        """The offer retained at `scope` now (to clear its chunks after replacing it)."""
        topic = offer_topic(scope)
        self._subscribe([topic])
        time.sleep(wait_s)
        self.client.unsubscribe(topic)
        with self._lock:
            payload = self.retained_offer.pop(topic, b"")
        try:
            old = json.loads(payload) if payload else None
        except ValueError:
            return None
        return old if isinstance(old, dict) else None

    def clear_chunks(self, scope: str, old: dict[str, Any]) -> int:
        transfer, chunks = old.get("transfer"), old.get("chunks")
        if not isinstance(transfer, str) or not isinstance(chunks, int) or chunks > 100_000:
            return 0
        infos = [self.client.publish(chunk_topic(scope, transfer, i), b"", qos=1, retain=True)
                 for i in range(chunks)]
        for info in infos:
            info.wait_for_publish(30)
        return chunks

    def publish_offer(self, offer: Offer, payload: bytes | None = None) -> None:
        data = payload if payload is not None else json.dumps(offer.to_json()).encode()
        self.client.publish(offer_topic(offer.scope), data, qos=1, retain=True).wait_for_publish(30)

    def chunk(self, offer: Offer, data: bytes, index: int) -> bytes:
        return data[index * offer.chunk_size:(index + 1) * offer.chunk_size]

    def publish_chunks(self, offer: Offer, data: bytes, indices: Iterable[int] | None = None,
                       progress: bool = False) -> None:
        """Retained QoS 1 chunks; waits until the broker has acknowledged them all."""
        todo = list(range(offer.chunks) if indices is None else indices)
        shown = bar(len(todo), "chunks", "chunk") if progress else None
        infos = []
        for i in todo:
            infos.append(self.client.publish(chunk_topic(offer.scope, offer.transfer, i),
                                             self.chunk(offer, data, i), qos=1, retain=True))
        for info in infos:
            info.wait_for_publish(120)
            if shown is not None:
                shown.update()
        if shown is not None:
            shown.close()

    def serve(self, offer: Offer, data: bytes) -> None:
        """Answer nodes' requests for missing chunks of `offer` from now on."""
        with self._lock:
            self.serving[offer.transfer] = (offer, data)

    def _resend(self, payload: bytes) -> None:
        try:
            request = json.loads(payload)
            offer, data = self.serving[request["transfer"]]
            missing = [int(i) for i in request["missing"] if 0 <= int(i) < offer.chunks]
        except (ValueError, KeyError, TypeError):
            return
        now = time.monotonic()
        with self._lock:
            # Many nodes missing the same chunk ask at once: one re-send serves them all.
            due = [i for i in missing
                   if now - self._sent_at.get((offer.transfer, i), -1e9) >= RESEND_GAP_S]
            self._sent_at.update({(offer.transfer, i): now for i in due})
        for i in due:
            self.client.publish(chunk_topic(offer.scope, offer.transfer, i),
                                self.chunk(offer, data, i), qos=1, retain=True)
        self.resent += len(due)

    # --- results --------------------------------------------------------------------------

    def outcome(self, node: str, offer: Offer) -> NodeResult | None:
        """The node's final answer about `offer`, or None while it is still busy."""
        status = self.statuses.get(node)
        if not status or status.get("offered_transfer") != offer.transfer:
            return None
        state = status.get("state")
        if state == "installed" and status.get("installed_version") == offer.version:
            return NodeResult(node, True, f"installed {offer.version}")
        if state in FAILED:
            return NodeResult(node, False, f"{state}: {status.get('reason', '')}")
        return None

    def wait(self, offer: Offer, targets: set[str], timeout: float,
             progress: bool = False) -> list[NodeResult]:
        results: dict[str, NodeResult] = {}
        shown = bar(len(targets), "nodes") if progress else None
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(results) < len(targets):
                for node in sorted(targets - set(results)):
                    result = self.outcome(node, offer)
                    if result is not None:
                        results[node] = result
                        if shown is not None:
                            shown.update()
                left = deadline - time.monotonic()
                if len(results) == len(targets) or left <= 0:
                    break
                self._lock.wait(min(left, 1.0))
        if shown is not None:
            shown.close()
        for node in sorted(targets - set(results)):
            status = self.statuses.get(node, {})
            seen = (f"last state {status.get('state')} {status.get('progress', 0)}%"
                    if status.get("offered_transfer") == offer.transfer else
                    "never saw the offer" if self.online.get(node) else "offline")
            results[node] = NodeResult(node, False, f"no result within {timeout:.0f} s ({seen})")
        return [results[n] for n in sorted(results)]

    def push(self, package: Package, scope: str, targets: set[str], timeout: float = 600.0,
             chunk_size: int = DEFAULT_CHUNK, auto_install: bool = True, summary: str = "",
             progress: bool = False) -> tuple[Offer, list[NodeResult]]:
        """Replace the scope's offer with `package` and wait for each target's result."""
        old = self.previous_offer(scope)
        offer = self.offer_for(package, scope, chunk_size, auto_install, summary)
        self.serve(offer, package.model)
        self.publish_offer(offer)
        if old is not None:
            self.clear_chunks(scope, old)
        self.publish_chunks(offer, package.model, progress=progress)
        if not auto_install:
            return offer, []
        return offer, self.wait(offer, targets, timeout, progress)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
