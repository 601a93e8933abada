"""`kws-fleet render`: everything a fleet needs, from the inventory, into one directory.

    OUT/broker/passwd, OUT/broker/acl      Mosquitto password_file and acl_file
    OUT/secrets/passwords.yaml             the plain passwords (0600; re-rendering keeps them)
    OUT/nodes/<id>/node.yaml               the node's configuration (0600: holds its password)
    OUT/nodes/<id>/edge-node.service       the systemd unit
    OUT/nodes/<id>/setup-pi.sh             run as root on the Pi: overlays, ALSA, venv, service
    OUT/nodes/<id>/ca.crt, fleet.pub       when the inventory names them

Each node.yaml is checked with the node's own loader before anything is written (the
passwords file included), so a typo in `defaults` fails here rather than on 200 Pis.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edge_node.config import ConfigError, NodeConfig, build
from edge_node.topics import HA_USER, OWNER_USER
from provisioning.acl import render_acl
from provisioning.credentials import load_passwords, password_file, write_private
from provisioning.inventory import Inventory, InventoryError, NodeEntry
from provisioning.progress import bar

TEMPLATES = Path(__file__).parent / "templates"
PI_ETC = Path("/etc/edge-node")
PI_STATE = Path("/var/lib/edge-node")
SPH0645_AUDIO = {"sample_format": "int32", "channels": 2, "channel": "auto", "discard_s": 1.0}
"""The SPH0645 through the ALSA `default` capture device that setup-pi.sh configures."""

@dataclass(frozen=True)
class Rendered:
    """What a render produced (for the command's summary)."""

    out: Path
    nodes: int
    new_accounts: list[str]


def merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else in `extra` replaces."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def node_config(inventory: Inventory, node: NodeEntry, password: str) -> dict[str, Any]:
    """The node.yaml mapping, validated by edge_node.config."""
    broker = inventory.broker
    mqtt: dict[str, Any] = {"host": broker.host, "port": broker.port, "username": node.id,
                            "password": password, "state_dir": str(PI_STATE)}
    if broker.ca_file is not None:
        mqtt["tls"] = {"ca_file": str(PI_ETC / "ca.crt")}
    data = merge({"source": "mic", "audio": SPH0645_AUDIO}, inventory.defaults)
    data = merge(data, node.config)
    data = merge(data, {"mqtt": mqtt})
    data = {"node_id": node.id, "name": node.name or node.id, "area": node.area,
            "group": node.group, **data}
    try:
        build(NodeConfig, data)
    except ConfigError as exc:
        raise InventoryError(f"node {node.id}: {exc}") from exc
    return data


def setup_script(inventory: Inventory) -> str:
    text = (TEMPLATES / "setup-pi.sh").read_text()
    return text.replace("@PACKAGE@", inventory.package)


def render(inventory: Inventory, out: Path) -> Rendered:
    for path in (inventory.broker.ca_file, inventory.public_key):
        if path is not None and not path.is_file():
            raise InventoryError(f"{path} does not exist")
    users = [OWNER_USER, HA_USER, *(n.id for n in inventory.nodes)]
    secrets = out / "secrets" / "passwords.yaml"
    passwords, created = load_passwords(secrets, users)
    configs = {n.id: node_config(inventory, n, passwords[n.id]) for n in inventory.nodes}
    write_private(secrets, yaml.safe_dump(passwords, sort_keys=True))
    (out / "broker").mkdir(parents=True, exist_ok=True)
    write_private(out / "broker" / "passwd", password_file(passwords))
    (out / "broker" / "acl").write_text(render_acl(inventory))
    unit = (TEMPLATES / "edge-node.service").read_text()
    script = setup_script(inventory)
    shown = bar(len(inventory.nodes), "rendering")
    for node in inventory.nodes:
        shown.update()
        folder = out / "nodes" / node.id
        folder.mkdir(parents=True, exist_ok=True)
        write_private(folder / "node.yaml", yaml.safe_dump(configs[node.id], sort_keys=False))
        (folder / "edge-node.service").write_text(unit)
        (folder / "setup-pi.sh").write_text(script)
        (folder / "setup-pi.sh").chmod(0o755)
        for source, name in ((inventory.broker.ca_file, "ca.crt"),
                             (inventory.public_key, "fleet.pub")):
            if source is not None:
                shutil.copyfile(source, folder / name)
    shown.close()
    return Rendered(out, len(inventory.nodes), created)
