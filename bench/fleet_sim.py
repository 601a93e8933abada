"""Simulated nodes for bench.fleet_status: each is a node as `edge_node.node.build_node`
builds it (connection with last will, discovery, controls, status, disk queue, OTA) around
the scripted agent of tests/support/mqtt_node, so they publish exactly what a real node publishes,
through the same code.

`python -m bench.fleet_sim PORT PASSWORDS.yaml FIRST COUNT STATE_DIR`; stdin lines:
`status` (every node publishes its status), `detect INDEX LABEL` (node INDEX detects LABEL),
`stop COUNT` (the first COUNT nodes shut down cleanly), `quit`. Prints `ready` when all
nodes are connected and have published a status, and `done` after each command.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import yaml

from edge_node.config import NodeConfig, build
from edge_node.events import Status
from edge_node.mqtt.client import MqttConnection
from edge_node.node import Node, build_node
from tests.support.mqtt_node import ScriptedAgent

LABELS = ["stop", "go", "left", "right", "_unknown_", "_silence_"]


def node_id(index: int) -> str:
    return f"sim{index:04d}"


class Session:
    """One simulated node: built, started, its connection and scripted agent at hand."""

    def __init__(self, node: Node, agent: ScriptedAgent) -> None:
        self.node, self.agent_ = node, agent
        self.conn = next(e for e in node.extensions if isinstance(e, MqttConnection))

    def start(self) -> None:
        self.node.start()

    def close(self) -> None:
        self.node.stop()


def make_session(index: int, port: int, password: str, state: Path) -> Session:
    config = build(NodeConfig, {
        "node_id": node_id(index), "group": f"g{index % 10}", "source": "stdin",
        "mqtt": {"host": "127.0.0.1", "port": port, "username": node_id(index),
                 "password": password, "state_dir": str(state), "keepalive": 60}})
    agent = ScriptedAgent(config.detector, LABELS, "1.0.0")
    return Session(build_node(config, agent=agent, stdout=False, display=False), agent)


def publish_status(session: Session, latency_ms: float) -> None:
    agent = session.agent_
    agent.hub.publish(Status(-40.0, latency_ms, 100, agent.detections, 60.0, True))


def main() -> None:
    port, secrets, first, count, state = (int(sys.argv[1]), Path(sys.argv[2]),
                                          int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
    logging.basicConfig(level=logging.ERROR)
    passwords = yaml.safe_load(secrets.read_text())
    sessions = [make_session(i, port, passwords[node_id(i)], state)
                for i in range(first, first + count)]
    for s in sessions:
        s.start()
    deadline = time.monotonic() + 120
    while not all(s.conn.connected.is_set() for s in sessions):
        if time.monotonic() > deadline:
            sys.exit("nodes did not connect")
        time.sleep(0.05)
    for s in sessions:
        publish_status(s, 2.0)
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["status"]:
            for s in sessions:
                publish_status(s, float(words[1]))
        elif words[:1] == ["detect"]:
            session = sessions[int(words[1]) - first]
            session.agent_.handle(["detect", words[2], "0.9"])
        elif words[:1] == ["stop"]:
            for s in sessions[:int(words[1])]:
                s.close()
        elif words[:1] == ["quit"]:
            break
        print("done", flush=True)
    for s in sessions:
        if s.conn.connected.is_set():
            s.close()


if __name__ == "__main__":
    main()
