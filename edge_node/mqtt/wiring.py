"""The MQTT pieces `edge_node.node.build_node` puts together, and `edge-node forget`.

The node's one broker connection is shared by two sibling extensions that never call each
other: Home Assistant (`MqttExtension`: discovery, detections, diagnostics, controls, built by
`home_assistant`) and model updates (`edge_node.ota.extension.OtaExtension`). Without a broker
configured, the demo brings its own (`edge_node.mqtt.demo`).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from typing import TYPE_CHECKING

from edge_node import topics
from edge_node.config import ConfigError, NodeConfig
from edge_node.model import ModelError, read_manifest
from edge_node.mqtt import discovery
from edge_node.mqtt.client import MqttConnection
from edge_node.mqtt.controls import NUMBER_CONTROLS, Controls, StateStore, agent_controls
from edge_node.mqtt.discovery import NodeInfo
from edge_node.mqtt.extension import THERMAL, MqttExtension
from edge_node.mqtt.queue import DetectionQueue

if TYPE_CHECKING:
    from edge_node.node import Extension, NodeContext

log = logging.getLogger(__name__)

STATE_TOPICS = (topics.AVAILABILITY, *NUMBER_CONTROLS, "listening", topics.LAST_COMMAND,
                topics.STATUS, topics.MODEL_STATUS)


def broker_connection(context: NodeContext) -> tuple[MqttConnection, list[Extension]] | None:
    """The connection to the configured broker, or to the demo's (the demo's broker and
    monitor come along as extensions); None without MQTT."""
    config = context.config
    settings = config.mqtt
    demo: list[Extension] = []
    if not config.wants_broker:
        return None
    if config.runs_demo:
        from edge_node.mqtt.demo import demo_broker

        found = demo_broker()
        if found is None:
            return None
        (host, port), demo = found
        settings = dataclasses.replace(settings, host=host, port=port)
    return MqttConnection(settings, config.node_id, instance=uuid.uuid4().hex[:8]), demo


def home_assistant(context: NodeContext, conn: MqttConnection) -> MqttExtension:
    """The Home Assistant extension on `conn`, with its saved controls already restored."""
    config, agent, model = context.config, context.agent, context.model
    settings = conn.settings
    node_id = config.node_id
    base = settings.topic_base(node_id)
    info = NodeInfo(node_id=node_id, name=config.display_name, base=base,
                    prefix=settings.discovery_prefix, model_name=model.name,
                    model_version=model.version, labels=tuple(model.labels),
                    has_thermal=THERMAL.exists(), area=config.area, group=config.group)
    store = StateStore(settings.state_path(node_id))
    controls = Controls(conn, base, store, agent_controls(agent, context.request_restart))
    controls.restore()
    queue = DetectionQueue(conn, f"{base}/{topics.DETECTION}", settings.queue_path(node_id),
                           settings.max_queued)
    return MqttExtension(conn, info, context.hub, store, controls, queue)


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
