"""Home Assistant MQTT discovery: one HA device per node, one retained config per entity.

Topics follow `<prefix>/<component>/<node_id>/<object_id>/config` (per-component discovery,
understood by every HA release since 2023.8). `object_id` makes entity ids predictable
(`sensor.<node>_last_command`), which the blueprint and dashboard in ha_config/ rely on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge_node import __version__, topics
from edge_node.detector import DetectorSettings
from edge_node.model import Manifest
from edge_node.mqtt.controls import NUMBER_CONTROLS
from edge_node.setting import meta

ORIGIN = {"name": "kws-edge-node", "sw_version": __version__,
          "support_url": "https://github.com/kws-edge-node/kws-edge-node"}


@dataclass(frozen=True)
class NodeInfo:
    """What discovery needs to know about a node and its model."""

    node_id: str
    name: str
    base: str
    prefix: str
    model_name: str
    model_version: str
    labels: tuple[str, ...]
    has_thermal: bool = False
    area: str = ""
    group: str = ""

    @property
    def commands(self) -> tuple[str, ...]:
        return tuple(label for label in self.labels if Manifest.is_command(label))


def slug(text: str) -> str:
    """HA's entity-id form: lower case, `-` and other symbols become `_`."""
    return "".join(ch if ch.isalnum() else "_" for ch in text.lower())


def object_id(info: NodeInfo, key: str) -> str:
    return f"{slug(info.node_id)}_{key}"


def entity_id(info: NodeInfo, component: str, key: str) -> str:
    """The entity id HA derives from our `object_id` (for tests and ha_config/)."""
    return f"{component}.{object_id(info, key)}"


def config_topic(info: NodeInfo, component: str, key: str) -> str:
    return f"{info.prefix}/{component}/{info.node_id}/{key}/config"


def trigger_topic(info: NodeInfo, command: str) -> str:
    return f"{info.base}/{topics.TRIGGER}/{command}"


def device(info: NodeInfo) -> dict[str, Any]:
    out = {"identifiers": [f"kws_{info.node_id}"], "name": info.name,
           "manufacturer": "kws-edge-node", "model": f"Voice command node ({info.model_name})",
           "sw_version": f"{__version__} (model {info.model_version})"}
    return {**out, "suggested_area": info.area} if info.area else out


def _entity(info: NodeInfo, key: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "unique_id": object_id(info, key), "object_id": object_id(info, key),
            "availability_topic": f"{info.base}/{topics.AVAILABILITY}", "device": device(info),
            "origin": ORIGIN, **extra}


def _diagnostic(info: NodeInfo, key: str, name: str, field: str,
                **extra: Any) -> dict[str, Any]:
    return _entity(info, key, name, state_topic=f"{info.base}/{topics.STATUS}",
                   value_template=f"{{{{ value_json.{field} }}}}",
                   entity_category="diagnostic", **extra)


def _number(info: NodeInfo, key: str, name: str, **extra: Any) -> dict[str, Any]:
    """A number control whose range, step and unit are those its setting declares."""
    limits = meta(DetectorSettings, NUMBER_CONTROLS[key])
    unit = {"unit_of_measurement": limits.unit} if limits.unit else {}
    return _entity(info, key, name, command_topic=topics.set_topic(info.base, key),
                   state_topic=f"{info.base}/{key}", min=limits.low, max=limits.high,
                   step=limits.step, **extra, **unit, entity_category="config")


def entities(info: NodeInfo) -> dict[tuple[str, str], dict[str, Any]]:
    """(component, key) -> discovery payload, for every entity of the node."""
    b = info.base
    out: dict[tuple[str, str], dict[str, Any]] = {
        ("event", "command"): _entity(
            info, "command", "Command", state_topic=f"{b}/{topics.EVENT}",
            event_types=list(info.commands), icon="mdi:microphone-message"),
        ("sensor", "last_command"): _entity(
            info, "last_command", "Last command", state_topic=f"{b}/{topics.LAST_COMMAND}",
            value_template="{{ value_json.command }}",
            json_attributes_topic=f"{b}/{topics.LAST_COMMAND}",
            icon="mdi:account-voice"),
        ("sensor", "confidence"): _entity(
            info, "confidence", "Confidence", state_topic=f"{b}/{topics.LAST_COMMAND}",
            value_template="{{ value_json.confidence }}", state_class="measurement",
            icon="mdi:percent-circle"),
        ("sensor", "latency"): _diagnostic(
            info, "latency", "Inference latency", "latency_ms", unit_of_measurement="ms",
            device_class="duration", state_class="measurement"),
        ("sensor", "audio_level"): _diagnostic(
            info, "audio_level", "Audio level", "level_dbfs", unit_of_measurement="dBFS",
            state_class="measurement", icon="mdi:waveform"),
        ("sensor", "uptime"): _diagnostic(
            info, "uptime", "Uptime", "uptime_s", unit_of_measurement="s",
            device_class="duration", state_class="measurement"),
        ("sensor", "detections"): _diagnostic(
            info, "detections", "Detections", "detections", state_class="total_increasing",
            icon="mdi:counter"),
        ("sensor", "model_version"): _diagnostic(
            info, "model_version", "Model version", "model_version", icon="mdi:brain"),
        ("sensor", "problem"): _diagnostic(
            info, "problem", "Problem", "problem", icon="mdi:alert-circle-outline"),
        ("number", "threshold"): _number(info, "threshold", "Detection threshold",
                                         mode="slider", icon="mdi:tune"),
        ("number", "refractory"): _number(info, "refractory", "Cooldown", mode="box",
                                          icon="mdi:timer-sand"),
        ("number", "isolation"): _number(info, "isolation", "Talk rejection", mode="slider",
                                         icon="mdi:account-voice-off"),
        ("switch", "listening"): _entity(
            info, "listening", "Listening", command_topic=f"{b}/listening/set",
            state_topic=f"{b}/listening", payload_on="ON", payload_off="OFF",
            icon="mdi:microphone"),
        ("update", "model"): _entity(
            info, "model", "Model", state_topic=f"{b}/{topics.MODEL_STATUS}",
            command_topic=f"{b}/{topics.MODEL}/{topics.INSTALL}", payload_install="install",
            entity_category="config", icon="mdi:brain"),
        ("button", "restart"): _entity(
            info, "restart", "Restart", command_topic=f"{b}/restart/set", payload_press="PRESS",
            device_class="restart", entity_category="config"),
    }
    if info.has_thermal:
        out[("sensor", "cpu_temperature")] = _diagnostic(
            info, "cpu_temperature", "CPU temperature", "cpu_temperature_c",
            unit_of_measurement="°C", device_class="temperature", state_class="measurement")
    for command in info.commands:
        out[("device_automation", f"heard_{command}")] = {
            "automation_type": "trigger", "type": "command", "subtype": command,
            "topic": trigger_topic(info, command), "device": device(info), "origin": ORIGIN}
    return out


def messages(info: NodeInfo) -> list[tuple[str, dict[str, Any]]]:
    """(config topic, payload) for every entity, ready to publish retained."""
    return [(config_topic(info, component, key), payload)
            for (component, key), payload in entities(info).items()]


def removal_topics(info: NodeInfo, commands: tuple[str, ...] | list[str] | None = None,
                   ) -> list[str]:
    """Config topics to clear (empty retained): all entities, or only the given commands'
    device triggers (commands a new model no longer has)."""
    if commands is not None:
        return [config_topic(info, "device_automation", f"heard_{c}") for c in commands]
    return [topic for topic, _ in messages(info)]
