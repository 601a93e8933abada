"""OTA push timings: one model to 100 nodes, and the 6.5 MB article CNN to one node.

A private Mosquitto on loopback; each node is the real OTA extension (MQTT connection,
offer/chunk handling, staging file, signature and hash checks, model load, self-test on the
bundled recording, slot commit with fsyncs, atomic pointer swap) in this process, handing the
model to a stand-in for the agent (the audio loop is not what is measured). The fleet owner's
side is `provisioning.push.Pusher`, as `kws-fleet push-model --all --inventory` uses it.

Times: push start -> every node reports `installed` (what `push-model` waits for), and the
median/max per node of the download (offer -> `verifying`) and of verify + load + self-test +
swap (`verifying` -> `installed`), from status arrival times at a subscriber.

Run: `.venv/bin/python -m bench.fleet_push [--nodes 100]`
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_node.detector import DetectorSettings
from edge_node.events import EventHub, ModelInstalled
from edge_node.model import DEFAULT_MODEL, Model, read_manifest
from edge_node.mqtt.client import MqttConnection
from edge_node.mqtt.settings import MqttSettings
from edge_node.ota.extension import OtaExtension
from edge_node.ota.install import ModelStore
from edge_node.ota.package import build_package, load_private_key
from edge_node.ota.settings import OtaSettings
from provisioning.broker import BrokerOptions
from provisioning.keys import keygen
from provisioning.push import Pusher, scope_for
from tests.support.mqtt_broker import Broker
from tests.support.real_node import TimedSubscriber
from training.evaluation.benchmarks import machine, write_section

ARTICLE = DEFAULT_MODEL.parent / "article_cnn.tflite"


class Node:
    """One in-process node's OTA side."""

    def __init__(self, folder: Path, node_id: str, broker: Broker, public_key: Path,
                 model: Any) -> None:
        settings = MqttSettings(host="127.0.0.1", port=broker.port, state_dir=folder)
        self.conn = MqttConnection(settings, node_id)
        self.model, hub = model, EventHub()
        hub.subscribe(ModelInstalled, self.use)
        self.ota = OtaExtension(self.conn, settings.topic_base(node_id), node_id, "",
                                OtaSettings(public_key=public_key),
                                ModelStore(folder / "models"), model, hub, DetectorSettings())
        self.ota.start()
        self.conn.start()

    def use(self, event: ModelInstalled) -> None:
        """What the agent does with an installed model: switch to it."""
        self.model = event.model

    def close(self) -> None:
        self.ota.stop()
        self.conn.close()


def phases(sub: TimedSubscriber, transfer: str, started: float) -> dict[str, list[float]]:
    """Per node: seconds from `started` to the end of its download and to `installed`."""
    verifying: dict[str, float] = {}
    installed: dict[str, float] = {}
    with sub.cond:
        pairs = list(zip(sub.arrivals, sub.messages, strict=True))
    for t, m in pairs:
        body = m.json()
        if body.get("offered_transfer") != transfer:
            continue
        node = body["node_id"]
        if body["state"] == "verifying":
            verifying.setdefault(node, t - started)
        elif body["state"] == "installed":
            installed.setdefault(node, t - started)
    return {"download": [verifying[n] for n in installed if n in verifying],
            "install": [installed[n] - verifying[n] for n in installed if n in verifying]}


def push(folder: Path, broker: Broker, keys: tuple[Path, Path], count: int, model: Path,
         version: str, chunk_size: int) -> dict[str, Any]:
    """Start `count` nodes, push `model` to them (fleet scope, or the node's own for one)."""
    base_model = Model(DEFAULT_MODEL)
    nodes = {f"n{i:03d}": Node(folder / f"n{i:03d}", f"n{i:03d}", broker, keys[1], base_model)
             for i in range(count)}
    sub = TimedSubscriber(broker, "kws/+/model/status")
    try:
        deadline = time.monotonic() + 60
        while not all(n.conn.connected.is_set() for n in nodes.values()):
            if time.monotonic() > deadline:
                raise RuntimeError("nodes did not connect")
            time.sleep(0.05)
        package = build_package(model, load_private_key(keys[0]), version)
        pusher = Pusher(BrokerOptions("127.0.0.1", broker.port, username=""))
        scope = scope_for(next(iter(nodes))) if count == 1 else scope_for()
        started_wall, started = time.time(), time.monotonic()
        try:
            offer, results = pusher.push(package, scope, set(nodes), timeout=900,
                                         chunk_size=chunk_size)
        finally:
            pusher.close()
        took = time.monotonic() - started
        time.sleep(0.5)
        on_new = sum(n.model.version == version for n in nodes.values())
        p = phases(sub, offer.transfer, started_wall)
        return {"nodes": count, "ok": sum(r.ok for r in results), "on_new_version": on_new,
                "bytes": offer.size, "chunks": offer.chunks, "chunk_size": chunk_size,
                "resent_chunks": pusher.resent, "seconds": took,
                "download_median_s": float(np.median(p["download"])),
                "download_max_s": float(np.max(p["download"])),
                "install_median_s": float(np.median(p["install"])),
                "install_max_s": float(np.max(p["install"])),
                "failures": [r.detail for r in results if not r.ok][:3]}
    finally:
        sub.close()
        for node in nodes.values():
            node.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100)
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        private, public, _ = keygen(folder / "keys")
        broker = Broker(folder / "broker").start()
        try:
            fleet = push(folder / "fleet", broker, (private, public), args.nodes,
                         DEFAULT_MODEL, "9.0.0", 64 * 1024)
            print(json.dumps(fleet))
            big = push(folder / "big", broker, (private, public), 1, ARTICLE, "9.0.0",
                       64 * 1024)
            print(json.dumps(big))
        finally:
            broker.stop()
    default = read_manifest(DEFAULT_MODEL)
    rows = [(f"{default.name} {default.extra.get('quantization', '')} "
             f"({default.extra.get('architecture', '?')})", fleet),
            ("article CNN float32", big)]
    body = [
        f"Machine: {machine()}. `python -m bench.fleet_push --nodes {args.nodes}` "
        f"({time.monotonic() - started:.0f} s): a private Mosquitto on loopback, "
        "`provisioning.push.Pusher` (what `kws-fleet push-model` runs) and N in-process "
        "nodes, each the real OTA extension with its own MQTT connection, staging file and "
        "models dir: download, signature and sha256 check, model load, self-test on the "
        "bundled 24 s recording, fsynced slot and pointer swap. The audio loop is a stand-in. "
        "Chunks of 64 KiB, QoS 1, retained. Download = push start -> the node's `verifying` "
        "(includes the pusher's 0.5 s look for the scope's previous retained offer); "
        "install = `verifying` -> `installed` (verify, load, self-test, swap).",
        "",
        "| model | bytes | chunks | nodes | installed (on new version) | push -> all "
        "installed | download median / max | install median / max | chunks re-sent |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows:
        body.append(
            f"| {name} | {r['bytes']:,} | {r['chunks']} | {r['nodes']} | {r['ok']} "
            f"({r['on_new_version']}) | {r['seconds']:.1f} s | {r['download_median_s']:.2f} / "
            f"{r['download_max_s']:.2f} s | {r['install_median_s']:.2f} / "
            f"{r['install_max_s']:.2f} s | {r['resent_chunks']} |")
    body += ["", "With 100 nodes on one 2-core machine the self-tests (about 240 inferences "
             "each) compete for the CPU, so the install column measures that contention; "
             "on a fleet each Pi runs only its own."]
    write_section("ota-fleet-push", "OTA model push (fleet of in-process nodes, one big model)",
                  "\n".join(body))


if __name__ == "__main__":
    main()
