"""The fleet inventory (`inventory.yaml`): the broker, the nodes and what they share.

    broker: {host: mqtt.home.lan, port: 8883, ca_file: ca.crt}   # ca_file: relative to here
    package: kws-edge-node          # pip requirement installed on each Pi (with the `pi` extra)
    public_key: fleet.pub           # optional: OTA signing key installed on each Pi
    defaults: {detector: {threshold: 0.7}}         # node.yaml settings shared by every node
    nodes:
      - {id: kitchen, name: Kitchen, area: Kitchen, group: downstairs}
      - {id: garage, group: outside, config: {audio: {gain_db: 12}}}   # per-node node.yaml

Ids and groups become MQTT topic levels and broker user names, so they are checked here,
before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edge_node.mqtt.discovery import slug
from edge_node.mqtt.settings import MqttSettings
from edge_node.setting import meta
from edge_node.topics import HA_USER, OWNER_USER, RESERVED_IDS

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


class InventoryError(ValueError):
    """The inventory is invalid; the message names the node or key."""


@dataclass(frozen=True)
class BrokerInfo:
    """Where the nodes connect (as seen from the nodes)."""

    host: str
    port: int = 8883
    ca_file: Path | None = None


@dataclass(frozen=True)
class NodeEntry:
    """One node of the inventory."""

    id: str
    name: str = ""
    area: str = ""
    group: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Inventory:
    """The whole fleet."""

    broker: BrokerInfo
    nodes: tuple[NodeEntry, ...]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    package: str = "kws-edge-node"
    public_key: Path | None = None

    def node(self, node_id: str) -> NodeEntry:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise InventoryError(f"no node {node_id!r} in the inventory")

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for node in self.nodes:
            if node.group:
                out.setdefault(node.group, []).append(node.id)
        return out


def check_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise InventoryError(f"{where}: {value!r} must be letters, digits, - and _ "
                             "(starting with a letter or digit)")
    return value


def _text(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key, "")
    if not isinstance(value, str):
        raise InventoryError(f"{where}.{key}: expected text, got {value!r}")
    return value


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InventoryError(f"{where}: expected a mapping, got {value!r}")
    return value


def _node(entry: Any, index: int) -> NodeEntry:
    where = f"nodes[{index}]"
    entry = _mapping(entry, where)
    unknown = sorted(set(entry) - {"id", "name", "area", "group", "config"})
    if unknown:
        raise InventoryError(f"{where}: unknown key {unknown[0]!r} "
                             "(known: id, name, area, group, config)")
    node_id = entry.get("id")
    if node_id in RESERVED_IDS or node_id in (OWNER_USER, HA_USER):
        raise InventoryError(f"{where}.id: {node_id!r} is reserved")
    node_id = check_name(node_id, f"{where}.id")
    group = _text(entry, "group", where)
    if group:
        check_name(group, f"{where}.group")
    config = _mapping(entry.get("config"), f"{where}.config")
    for key in ("node_id", "name", "area", "group"):
        if key in config:
            raise InventoryError(f"{where}.config.{key}: set it on the node entry instead")
    return NodeEntry(node_id, _text(entry, "name", where), _text(entry, "area", where), group,
                     config)


def parse_inventory(data: Any, base_dir: Path) -> Inventory:
    """Validate a loaded inventory; relative file paths are resolved against `base_dir`."""
    data = _mapping(data, "inventory")
    unknown = sorted(set(data) - {"broker", "nodes", "defaults", "package", "public_key"})
    if unknown:
        raise InventoryError(f"unknown key {unknown[0]!r} "
                             "(known: broker, nodes, defaults, package, public_key)")
    broker = _mapping(data.get("broker"), "broker")
    host, port = broker.get("host"), broker.get("port", 8883)
    if not isinstance(host, str) or not host:
        raise InventoryError("broker.host: the broker's host name is required")
    if isinstance(port, bool) or not isinstance(port, int) or \
            not meta(MqttSettings, "port").allows(port):
        raise InventoryError(f"broker.port: {port!r} is not a TCP port")
    ca = broker.get("ca_file")
    info = BrokerInfo(host, port, base_dir / ca if ca else None)
    nodes = data.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        raise InventoryError("nodes: expected a list of nodes")
    entries = tuple(_node(entry, i) for i, entry in enumerate(nodes))
    seen: dict[str, str] = {}
    for entry in entries:
        if entry.id in seen.values():
            raise InventoryError(f"node id {entry.id!r} appears twice")
        other = seen.setdefault(slug(entry.id), entry.id)
        if other != entry.id:
            raise InventoryError(f"node ids {other!r} and {entry.id!r} are one id to Home "
                                 f"Assistant ({slug(entry.id)!r}): rename one")
    key = data.get("public_key")
    package = data.get("package", "kws-edge-node")
    if not isinstance(package, str) or not package:
        raise InventoryError(f"package: expected a pip requirement, got {package!r}")
    return Inventory(info, entries, _mapping(data.get("defaults"), "defaults"), package,
                     base_dir / key if key else None)


def load_inventory(path: Path) -> Inventory:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise InventoryError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise InventoryError(f"{path} is not valid YAML: {exc}") from exc
    return parse_inventory(data, Path(path).resolve().parent)
