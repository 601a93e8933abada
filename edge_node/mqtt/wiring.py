"""Puts the MQTT pieces together for `edge-node run` and `edge-node forget`.

Kept in one module so agent.py and cli.py only need a line or two each.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from edge_node import topics
from edge_node.config import DEFAULT_EXAMPLE, ConfigError, NodeConfig
from edge_node.model import ModelError, read_manifest
from edge_node.mqtt import discovery
from edge_node.mqtt.client import MqttConnection
from edge_node.mqtt.controls import Controls, StateStore, agent_controls
from edge_node.mqtt.discovery import NodeInfo
from edge_node.mqtt.extension import THERMAL, MqttExtension
from edge_node.mqtt.queue import DetectionQueue
from edge_node.mqtt.settings import MqttSettings
from edge_node.ota.extension import OtaExtension
from edge_node.ota.install import ModelStore

if TYPE_CHECKING:
    from edge_node.agent import Agent

log = logging.getLogger(__name__)

STATE_TOPICS = (topics.AVAILABILITY, "threshold", "refractory", "listening", topics.LAST_COMMAND,
                topics.STATUS, topics.MODEL_STATUS)


class MqttSession:
    """A running MQTT integration for one agent; `close()` says offline and disconnects."""

    def __init__(self, config: NodeConfig, settings: MqttSettings, agent: Agent) -> None:
        self.agent = agent
        self.restart_requested = False
        node_id = config.node_id
        base = settings.topic_base(node_id)
        self.info = NodeInfo(node_id=node_id, name=config.display_name, base=base,
                             prefix=settings.discovery_prefix, model_name=agent.model.name,
                             model_version=agent.model.version, labels=tuple(agent.model.labels),
                             has_thermal=THERMAL.exists(), area=config.area,
                             group=config.group)
        self.conn = MqttConnection(settings, node_id, instance=uuid.uuid4().hex[:8])
        self.store = StateStore(settings.state_path(node_id))
        self.controls = Controls(self.conn, base, self.store,
                                 agent_controls(agent, self.request_restart))
        self.controls.restore()
        self.queue = DetectionQueue(self.conn, f"{base}/{topics.DETECTION}",
                                    settings.queue_path(node_id), settings.max_queued)
        self.extension = MqttExtension(self.conn, self.info, agent.hub, self.store,
                                       self.controls, self.queue)
        self.ota = OtaExtension(self.conn, base, node_id, config.group, config.ota,
                                ModelStore(config.models_dir), agent, agent.hub)

    def request_restart(self) -> None:
        """HA's restart button: stop listening, close cleanly, then exec ourselves again."""
        log.info("MQTT: restart requested")
        self.restart_requested = True
        self.agent.stop()

    def start(self) -> None:
        self.conn.start()

    def close(self) -> None:
        self.ota.close()
        self.conn.close()
        self.queue.close()


@contextmanager
def mqtt_session(config: NodeConfig, agent: Agent) -> Iterator[MqttSession | None]:
    """MQTT for `edge-node run`: the configured broker, the demo's broker, or none."""
    settings = config.mqtt
    broker = monitor = None
    if not settings.enabled:
        if config.source != f"wav:{DEFAULT_EXAMPLE}":
            yield None
            return
        from edge_node.mqtt.demo import Monitor, start_demo_broker

        try:
            host, port, broker = start_demo_broker()
        except ImportError:
            log.warning("demo without MQTT: no broker on 127.0.0.1:1883 and amqtt is not "
                        "installed (pip install 'kws-edge-node[demo]')")
            yield None
            return
        settings = dataclasses.replace(settings, host=host, port=port)
        monitor = Monitor(host, port)
    session = MqttSession(config, settings, agent)
    session.start()
    try:
        yield session
    finally:
        session.close()
        if monitor is not None:
            monitor.stop()
        if broker is not None:
            broker.stop()
    if session.restart_requested:
        log.info("restarting: %s", " ".join(sys.orig_argv))
        sys.stdout.flush()
        os.execv(sys.executable, sys.orig_argv)


def forget(config: NodeConfig, timeout: float = 10.0) -> int:
    """Remove the node from Home Assistant: clear its retained discovery and state topics."""
    settings = config.mqtt
    if not settings.enabled:
        raise ConfigError("forget needs a broker: set mqtt.host or --mqtt-host")
    node_id = config.node_id
    store = StateStore(settings.state_path(node_id))
    try:
        labels = read_manifest(config.model).labels
    except (ModelError, OSError):
        labels = ()
    announced = tuple(c for c in store.data.get("announced_commands", []) if isinstance(c, str))
    base = settings.topic_base(node_id)
    info = NodeInfo(node_id=node_id, name=config.display_name, base=base,
                    prefix=settings.discovery_prefix, model_name="", model_version="",
                    labels=tuple(dict.fromkeys(labels + announced)), has_thermal=True)
    topics = discovery.removal_topics(info) + [f"{base}/{t}" for t in STATE_TOPICS]
    conn = MqttConnection(settings, node_id, client_id=f"{settings.client_id_for(node_id)}-forget",
                          availability=False)
    conn.start()
    try:
        if not conn.connected.wait(timeout):
            log.error("forget: could not connect to %s:%d", settings.host, settings.port)
            return 1
        infos = [conn.publish(topic, "", qos=1, retain=True) for topic in topics]
        for info_ in infos:
            info_.wait_for_publish(timeout)
    finally:
        conn.close()
    store.set("announced_commands", [])
    log.info("forget: removed %d retained topics of node %s", len(topics), node_id)
    return 0
