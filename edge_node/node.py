"""The one place that builds a node: the event hub, the agent, and its extensions.

Every extension (stdout printer, systemd service, display, MQTT, OTA, demo broker) is built
here from the same `NodeContext` and shares the `Extension` protocol: `start()` once the node
is assembled, `stop()` in reverse order when the listening loop ends. Extensions never call
each other; they publish and subscribe typed events on the hub (`edge_node.events`). The few
things an extension may ask of the agent itself (change a setting, mute, stop) are the small
`AgentControl` protocol.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from edge_node.config import NodeConfig
from edge_node.detector import DetectorSettings
from edge_node.events import Detected, EventHub, Stopping
from edge_node.ota.install import ModelStore, confirm_when_running

if TYPE_CHECKING:
    from edge_node.model import Model

log = logging.getLogger(__name__)


class Extension(Protocol):
    """What every part of a node besides the agent is: started once, stopped once."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class AgentControl(Protocol):
    """What extensions may ask of the agent (the listening loop)."""

    hub: EventHub
    model: Model
    """The model it listens with now (a swap takes effect from the next audio block)."""
    listening: bool
    detections: int

    @property
    def detector_settings(self) -> DetectorSettings: ...

    @property
    def detector_requested(self) -> DetectorSettings:
        """The settings as given: an unset threshold means the model's calibrated one."""
        ...

    def update_detector(self, settings: DetectorSettings) -> None: ...

    def set_listening(self, listening: bool) -> None: ...

    def stop(self) -> None: ...

    def run(self, *, heartbeat: Callable[[], None] = ...) -> None: ...


@dataclass
class NodeContext:
    """What every extension is built from."""

    config: NodeConfig
    hub: EventHub
    agent: AgentControl
    model: Model
    """The model the node starts with (later ones arrive as `ModelChanged` events)."""
    models: ModelStore
    """Installed models (OTA) and which one is current."""
    request_restart: Callable[[], None]
    """Stop listening, stop every extension, then start this process again."""


class StdoutPrinter:
    """One JSON line per detection on stdout (logs go to stderr)."""

    def __init__(self, context: NodeContext) -> None:
        self.node_id = context.config.node_id
        context.hub.subscribe(Detected, self.on_detected)

    def on_detected(self, event: Detected) -> None:
        record = {**event.detection.to_json(), "model_version": event.model_version,
                  "timestamp": round(event.wall_time, 3), "node_id": self.node_id}
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()

    def start(self) -> None:
        """Nothing to start: it only follows hub events."""

    def stop(self) -> None:
        """Nothing to stop."""


@dataclass
class Node:
    """A built node: `run()` starts the extensions, listens, and stops them again."""

    agent: AgentControl
    extensions: list[Extension] = field(default_factory=list)
    heartbeat: Callable[[], None] = lambda: None
    """Called by the listening loop between blocks (the systemd watchdog)."""
    restart_requested: bool = False

    def request_restart(self) -> None:
        log.info("restart requested")
        self.restart_requested = True
        self.agent.stop()

    def start(self) -> None:
        for extension in self.extensions:
            extension.start()

    def stop(self) -> None:
        self.agent.hub.publish(Stopping())
        for extension in reversed(self.extensions):
            try:
                extension.stop()
            except Exception:
                log.exception("stopping %s failed", type(extension).__name__)

    def run(self) -> None:
        """Listen until the source ends or a stop; then restart by exec if that was asked."""
        self.start()
        try:
            self.agent.run(heartbeat=self.heartbeat)
        finally:
            self.stop()
        if self.restart_requested:
            log.info("restarting: %s", " ".join(sys.orig_argv))
            sys.stdout.flush()
            os.execv(sys.executable, sys.orig_argv)


def build_node(config: NodeConfig, reload_config: Callable[[], NodeConfig] | None = None, *,
               agent: AgentControl | None = None, model: Model | None = None,
               stdout: bool = True, display: bool = True) -> Node:
    """Assemble a node from its config: the agent (or a given stand-in), then its extensions.

    `reload_config` (re-reads node.yaml on SIGHUP) also turns on the systemd service part.
    """
    from edge_node.agent import Agent

    models = ModelStore(config.models_dir)
    hub = agent.hub if agent is not None else EventHub()
    if model is None and agent is None:
        model, _ = models.boot(config.model)
    if agent is None:
        agent = Agent(config, hub, model)
    model = model if model is not None else agent.model
    node = Node(agent)
    context = NodeContext(config, hub, agent, model, models, node.request_restart)
    confirm_when_running(hub, models)
    if stdout:
        node.extensions.append(StdoutPrinter(context))
    if reload_config is not None:
        from edge_node.service import Service

        service = Service(context, reload_config)
        node.extensions.append(service)
        node.heartbeat = service.heartbeat
    if display:
        from edge_node.display import open_display

        screen = open_display(config.display, hub, model.version)
        if screen is not None:
            node.extensions.append(screen)
    node.extensions += mqtt_extensions(context)
    return node


def mqtt_extensions(context: NodeContext) -> list[Extension]:
    """Home Assistant and OTA, siblings on one broker connection (plus the demo's broker when
    it brings one); the connection comes last, so it starts once every handler is registered
    and stops first."""
    if not context.config.wants_broker:
        return []
    from edge_node.mqtt.wiring import broker_connection, home_assistant

    link = broker_connection(context)
    if link is None:
        return []
    from edge_node.ota.extension import OtaExtension  # signature checks: only with a broker

    conn, demo = link
    config = context.config
    ha = home_assistant(context, conn)
    ota = OtaExtension(conn, conn.settings.topic_base(config.node_id), config.node_id,
                       config.group, config.ota, context.models, context.model, context.hub,
                       context.agent.detector_requested)
    return [*demo, ha, ota, conn]
