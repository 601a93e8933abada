"""`kws-fleet render`: what it writes loads into the node's own config loader, secrets are
private and stable, the inventory is validated, the unit verifies and the Pi setup script is
valid bash that is idempotent (run twice into a folder)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from edge_node.config import load_config
from provisioning.inventory import InventoryError, load_inventory
from provisioning.render import render
from tests.support.fleet_helpers import INVENTORY, kws_fleet, passwords, render_fleet

pytestmark = pytest.mark.integration


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_each_node_yaml_loads_with_the_nodes_own_loader(tmp_path):
    (tmp_path / "ca.crt").write_text("CA")
    (tmp_path / "fleet.pub").write_text("KEY")
    inventory = {**INVENTORY, "broker": {"host": "mqtt.example", "ca_file": "ca.crt"},
                 "public_key": "fleet.pub", "defaults": {"detector": {"threshold": 0.7}},
                 "nodes": [*INVENTORY["nodes"][:2],
                           {"id": "attic", "config": {"detector": {"threshold": 0.5}}}]}
    _, out = render_fleet(tmp_path, inventory)
    secrets = passwords(out)
    assert set(secrets) == {"kws-fleet", "homeassistant", "kitchen", "garage", "attic"}
    assert len(set(secrets.values())) == 5
    kitchen = load_config(out / "nodes" / "kitchen" / "node.yaml")
    assert (kitchen.node_id, kitchen.name, kitchen.area, kitchen.group) == (
        "kitchen", "Kitchen", "Kitchen", "downstairs")
    assert (kitchen.mqtt.host, kitchen.mqtt.port, kitchen.mqtt.username) == (
        "mqtt.example", 8883, "kitchen")
    assert kitchen.mqtt.password == secrets["kitchen"]
    assert str(kitchen.mqtt.tls.ca_file) == "/etc/edge-node/ca.crt"
    assert kitchen.audio.sample_format == "int32" and kitchen.detector.threshold == 0.7
    attic = load_config(out / "nodes" / "attic" / "node.yaml")
    assert attic.detector.threshold == 0.5 and attic.group == "" and attic.name == "attic"
    for name in ("ca.crt", "fleet.pub", "edge-node.service", "setup-pi.sh"):
        assert (out / "nodes" / "attic" / name).is_file()
    for secret in (out / "nodes" / "kitchen" / "node.yaml", out / "broker" / "passwd",
                   out / "secrets" / "passwords.yaml"):
        assert mode(secret) == 0o600, secret
    acl = (out / "broker" / "acl").read_text()
    assert "user kitchen\ntopic read kws/_group/downstairs/model/#" in acl
    assert "user attic" not in acl


def test_rendering_again_keeps_passwords_and_drops_removed_nodes(tmp_path):
    path, out = render_fleet(tmp_path)
    before = passwords(out)
    smaller = {**INVENTORY, "nodes": INVENTORY["nodes"][:2] + [{"id": "shed"}]}
    path.write_text(yaml.safe_dump(smaller))
    result = kws_fleet("render", str(path), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "new broker accounts: shed" in result.stdout
    after = passwords(out)
    assert after["kitchen"] == before["kitchen"] and after["kws-fleet"] == before["kws-fleet"]
    assert "attic" not in after
    users = [ln.split(":")[0] for ln in (out / "broker" / "passwd").read_text().splitlines()]
    assert sorted(users) == sorted(after)


@pytest.mark.parametrize(("change", "message"), [
    ({"nodes": [{"id": "_fleet"}]}, "'_fleet' is reserved"),
    ({"nodes": [{"id": "_group"}]}, "'_group' is reserved"),
    ({"nodes": [{"id": "kws-fleet"}]}, "'kws-fleet' is reserved"),
    ({"nodes": [{"id": "homeassistant"}]}, "'homeassistant' is reserved"),
    ({"nodes": [{"id": "a/b"}]}, "nodes[0].id"),
    ({"nodes": [{"id": "a", "group": "x+y"}]}, "nodes[0].group"),
    ({"nodes": [{"id": "a"}, {"id": "a"}]}, "appears twice"),
    ({"nodes": [{"id": "a", "room": "x"}]}, "unknown key 'room'"),
    ({"nodes": [{"id": "a", "config": {"node_id": "b"}}]}, "set it on the node entry"),
    ({"defaults": {"detector": {"treshold": 0.5}}}, "node kitchen: unknown setting detector"),
    ({"broker": {}}, "broker.host"),
])
def test_invalid_inventories_are_refused_with_the_reason(tmp_path, change, message):
    inventory = {**INVENTORY, **change}
    with pytest.raises(InventoryError) as exc:
        render_fleet(tmp_path, inventory)
    assert message in str(exc.value)
    assert not (tmp_path / "out" / "nodes").exists()




@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_rendered_unit_passes_systemd_analyze_verify(tmp_path):
    _, out = render_fleet(tmp_path)
    binary = tmp_path / "bin" / "edge-node"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    unit = (out / "nodes" / "kitchen" / "edge-node.service").read_text()
    assert "/opt/edge-node/.venv/bin/edge-node run --config /etc/edge-node/node.yaml" in unit
    local = tmp_path / "edge-node.service"
    local.write_text(unit.replace("/opt/edge-node/.venv/bin/edge-node", str(binary)))
    result = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True,
                            text=True)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stderr


def run_setup(script, root, steps: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SETUP_ROOT": str(root), "SETUP_STEPS": steps}
    return subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env,
                          timeout=30)


def test_the_setup_script_is_valid_bash_and_shellcheck_clean(tmp_path):
    _, out = render_fleet(tmp_path)
    script = out / "nodes" / "kitchen" / "setup-pi.sh"
    assert mode(script) == 0o755
    assert 'package="${PACKAGE:-kws-edge-node}"' in script.read_text()
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (scripts/bootstrap.sh dev installs it)")
    result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_the_setup_script_configures_boot_alsa_and_files_once(tmp_path):
    _, out = render_fleet(tmp_path)
    script = out / "nodes" / "kitchen" / "setup-pi.sh"
    root = tmp_path / "pi"
    config = root / "boot" / "firmware" / "config.txt"
    config.parent.mkdir(parents=True)
    config.write_text("[pi4]\narm_boost=1\n")
    first = run_setup(script, root, "boot alsa service")
    assert first.returncode == 0, first.stderr
    assert "reboot" in first.stderr
    second = run_setup(script, root, "boot alsa service")
    assert second.returncode == 0, second.stderr
    assert "added" not in second.stderr and "wrote" not in second.stderr
    lines = config.read_text().splitlines()
    for line in ("dtparam=i2s=on", "dtoverlay=googlevoicehat-soundcard", "dtparam=i2c_arm=on"):
        assert lines.count(line) == 1
        assert lines[lines.index(line) - 1] == "[all]"
    assert (root / "etc" / "modules").read_text() == "i2c-dev\n"
    asound = (root / "etc" / "asound.conf").read_text()
    assert "type dsnoop" in asound and 'capture.pcm "kwsmic"' in asound
    installed = root / "etc" / "edge-node" / "node.yaml"
    assert load_config(installed).node_id == "kitchen" and mode(installed) == 0o640
    assert (root / "etc" / "systemd" / "system" / "edge-node.service").read_text() == (
        out / "nodes" / "kitchen" / "edge-node.service").read_text()


def test_the_setup_script_uses_the_legacy_boot_config_when_that_is_what_exists(tmp_path):
    _, out = render_fleet(tmp_path)
    root = tmp_path / "pi"
    legacy = root / "boot" / "config.txt"
    legacy.parent.mkdir(parents=True)
    legacy.write_text("")
    result = run_setup(out / "nodes" / "garage" / "setup-pi.sh", root, "boot")
    assert result.returncode == 0, result.stderr
    assert "dtoverlay=googlevoicehat-soundcard" in legacy.read_text()
    assert not (root / "boot" / "firmware").exists()


def test_the_shipped_example_inventory_renders_nodes_the_node_loads(tmp_path):
    example = Path(__file__).resolve().parents[1] / "provisioning" / "inventory.example.yaml"
    done = render(load_inventory(example), tmp_path / "fleet")
    assert done.nodes == 3
    garage = load_config(tmp_path / "fleet" / "nodes" / "garage" / "node.yaml")
    assert garage.group == "outside" and garage.audio.gain_db == 12
    assert garage.mqtt.port == 1883 and not garage.mqtt.tls.enabled
