"""A rendered fleet (inventory -> kws-fleet render) and a real Mosquitto that loads its
generated password file and ACL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from provisioning.inventory import load_inventory
from provisioning.render import render
from tests.support.mqtt_broker import Broker
from tests.support.mqtt_node import REPO

INVENTORY = {
    "broker": {"host": "mqtt.example", "port": 8883},
    "nodes": [{"id": "kitchen", "name": "Kitchen", "area": "Kitchen", "group": "downstairs"},
              {"id": "garage", "name": "Garage", "area": "Garage", "group": "outside"},
              {"id": "attic", "group": "upstairs"}],
}


def render_fleet(folder: Path, inventory: dict | None = None) -> tuple[Path, Path]:
    """(inventory file, output dir) of a rendered fleet."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "inventory.yaml"
    path.write_text(yaml.safe_dump(inventory or INVENTORY))
    out = folder / "out"
    render(load_inventory(path), out)
    return path, out


def passwords(out: Path) -> dict[str, str]:
    return yaml.safe_load((out / "secrets" / "passwords.yaml").read_text())


def fleet_broker(out: Path, folder: Path) -> Broker:
    """Mosquitto with the rendered passwd and acl, nothing else added."""

    def config(broker: Broker) -> str:
        return "\n".join([f"listener {broker.port} 127.0.0.1", "persistence false",
                          "allow_anonymous false",
                          f"password_file {out / 'broker' / 'passwd'}",
                          f"acl_file {out / 'broker' / 'acl'}"])

    return Broker(folder, render=config).start()


def kws_fleet(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real command line, as the fleet owner runs it."""
    return subprocess.run([sys.executable, "-m", "provisioning.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
