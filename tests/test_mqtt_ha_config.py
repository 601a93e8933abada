"""ha_config/ loads (HA's tags need their own YAML loader) and refers only to entity ids and
topics the node really creates; the ACL grants a node exactly what it uses."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from paho.mqtt.client import topic_matches_sub

from edge_node.mqtt import discovery
from edge_node.mqtt.discovery import NodeInfo
from tests.support.mqtt_node import REPO

pytestmark = pytest.mark.unit

HA = REPO / "ha_config"
INFO = NodeInfo(node_id="kitchen", name="Kitchen", base="kws/kitchen", prefix="homeassistant",
                model_name="m", model_version="1", labels=("stop", "go", "left", "yes"),
                has_thermal=True)
NODE_DOMAINS = ("sensor", "switch", "number", "button", "event")
ENTITY = re.compile(r"\b(?:sensor|switch|number|button|event)\.kitchen_[a-z0-9_]+\b")
TOPIC = re.compile(r"\bkws/[A-Za-z0-9_/+#-]+")


@dataclass(frozen=True)
class Tagged:
    tag: str
    value: str


class HALoader(yaml.SafeLoader):
    """Home Assistant's YAML tags (!input, !secret, !include...) as plain markers."""


for _tag in ("!input", "!secret", "!include", "!include_dir_named", "!include_dir_list",
             "!include_dir_merge_named", "!include_dir_merge_list", "!env_var"):
    HALoader.add_constructor(
        _tag, lambda loader, node, t=_tag: Tagged(t, loader.construct_scalar(node)))


def load(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=HALoader)  # noqa: S506 - safe loader subclass


def walk(data: Any) -> list[Any]:
    if isinstance(data, dict):
        return [x for k, v in data.items() for x in (k, *walk(v))]
    if isinstance(data, list):
        return [x for v in data for x in walk(v)]
    return [data]


def node_entities() -> set[str]:
    return {discovery.entity_id(INFO, component, key)
            for component, key in discovery.entities(INFO) if component in NODE_DOMAINS}


def node_topics() -> tuple[set[str], set[str]]:
    """(published, subscribed) topics of the node: HA writes every `command_topic`."""
    published = {INFO.base + "/detection", INFO.base + "/error"}
    subscribed: set[str] = set()
    for payload in discovery.entities(INFO).values():
        for key, value in payload.items():
            if key.endswith("topic"):
                (subscribed if key == "command_topic" else published).add(value)
    return published, subscribed


YAML_FILES = sorted(HA.rglob("*.yaml"))


def test_ha_config_has_the_expected_files():
    names = {p.relative_to(HA).as_posix() for p in YAML_FILES}
    assert names == {"automations.yaml", "dashboards/kws_nodes.yaml",
                     "blueprints/automation/kws_edge_node/command_heard.yaml"}


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.name)
def test_yaml_refers_only_to_entities_and_topics_the_node_creates(path):
    strings = [s for s in walk(load(path)) if isinstance(s, str)]
    entities = {e for s in strings for e in ENTITY.findall(s)}
    topics = {t for s in strings for t in TOPIC.findall(s)}
    assert entities <= node_entities(), entities - node_entities()
    known = set().union(*node_topics())
    assert topics <= known, topics - known
    if path.name != "command_heard.yaml":
        assert entities, "names no node entity at all"


def test_dashboard_shows_every_entity_but_the_optional_cpu_temperature():
    shown = {e for s in walk(load(HA / "dashboards/kws_nodes.yaml")) if isinstance(s, str)
             for e in ENTITY.findall(s)}
    assert shown == node_entities() - {"sensor.kitchen_cpu_temperature"}


def test_blueprint_inputs_are_declared_used_and_filled_by_the_examples():
    blueprint = load(HA / "blueprints/automation/kws_edge_node/command_heard.yaml")
    declared = blueprint["blueprint"]["input"]
    used = {x.value for x in walk(blueprint) if isinstance(x, Tagged) and x.tag == "!input"}
    assert used == set(declared)
    selector = declared["command_entity"]["selector"]["entity"]["filter"][0]
    assert selector == {"integration": "mqtt", "domain": "event"}
    condition = blueprint["condition"][0]["value_template"]
    assert "attributes.event_type" in condition and "attributes.confidence" in condition
    required = {k for k, v in declared.items() if "default" not in v}
    uses = [a["use_blueprint"] for a in load(HA / "automations.yaml") if "use_blueprint" in a]
    assert uses
    for use in uses:
        assert (HA / "blueprints/automation" / use["path"]).is_file()
        assert required <= set(use["input"]) <= set(declared)
        assert use["input"]["command"] in INFO.commands


def acl_patterns(user: str) -> tuple[list[str], list[str]]:
    """(readable, writable) topic filters for `user` from the shipped ACL (patterns + user)."""
    read, write, current = [], [], None
    for line in (HA / "mosquitto/acl").read_text().splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "user":
            current = words[1]
            continue
        applies = words[0] == "pattern" or (words[0] == "topic" and current == user)
        if applies:
            access, topic = (words[1], words[2]) if len(words) == 3 else ("readwrite", words[1])
            topic = topic.replace("%u", user)
            if "read" in access:
                read.append(topic)
            if "write" in access:
                write.append(topic)
    return read, write


def allowed(topic: str, filters: list[str]) -> bool:
    return any(topic_matches_sub(f, topic) for f in filters)


def test_acl_grants_the_node_its_topics_and_nothing_of_another_node():
    read, write = acl_patterns("kitchen")
    own_published, own_subscribed = node_topics()
    published = {t for t, _ in discovery.messages(INFO)} | own_published
    subscribed = own_subscribed | {"homeassistant/status"}
    assert all(allowed(t, write) for t in published)
    assert all(allowed(t, read) for t in subscribed)
    other = {t.replace("kitchen", "garage") for t in published | subscribed if "kitchen" in t}
    assert not any(allowed(t, write) or allowed(t, read) for t in other)
    assert not allowed("homeassistant/status", write)
