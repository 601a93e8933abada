"""`kws-fleet status` and `kws-fleet set` against real node processes (the node's MQTT wiring)
that log in with the credentials `kws-fleet render` made, on a Mosquitto loading the rendered
ACL: the table and JSON show what the nodes published; set reaches a node, a group or all and
reports each node's answer."""

from __future__ import annotations

import json
import socket
import time

import pytest

from edge_node.mqtt.client import MqttConnection
from edge_node.mqtt.settings import MqttSettings
from tests.support.fleet_helpers import fleet_broker, kws_fleet, passwords, render_fleet
from tests.support.mqtt_broker import Subscriber, broker  # noqa: F401
from tests.support.mqtt_node import ScriptedNode

pytestmark = pytest.mark.integration


@pytest.fixture
def fleet(tmp_path):
    inventory, out = render_fleet(tmp_path)
    mosquitto = fleet_broker(out, tmp_path / "broker")
    secrets = passwords(out)
    owner = Subscriber(mosquitto, "kws/#", username="kws-fleet", password=secrets["kws-fleet"])
    nodes = {}
    for node_id, identity in (("kitchen", {"group": "downstairs", "area": "Kitchen"}),
                              ("garage", {"group": "outside"})):
        nodes[node_id] = ScriptedNode(
            tmp_path / node_id, {"host": "127.0.0.1", "port": mosquitto.port,
                                 "username": node_id, "password": secrets[node_id]},
            node_id=node_id, identity=identity, version="2.1.0")
    for node_id in nodes:
        owner.wait_for(lambda ms, n=node_id: [m for m in ms if m.topic == f"kws/{n}/listening"],
                       what=f"{node_id} announced")
    broker_args = ["--mqtt-host", "127.0.0.1", "--mqtt-port", str(mosquitto.port),
                   "--password-file", str(out / "secrets" / "passwords.yaml")]
    yield {"broker": mosquitto, "owner": owner, "nodes": nodes, "args": broker_args,
           "inventory": inventory, "secrets": secrets}
    for node in nodes.values():
        node.stop()
    owner.close()
    mosquitto.stop()


def status(fleet, *extra: str) -> dict:
    result = kws_fleet("status", "--json", "--inventory", str(fleet["inventory"]),
                       *fleet["args"], *extra)
    assert result.returncode == 0, result.stderr
    return {n["node_id"]: n for n in json.loads(result.stdout)["nodes"]}


def test_status_shows_every_node_from_its_topics(fleet):
    owner, nodes = fleet["owner"], fleet["nodes"]
    before = time.time()
    nodes["kitchen"].send("detect left 0.875")
    nodes["kitchen"].send("status")
    nodes["garage"].send("status")
    for node_id in nodes:
        owner.last(f"kws/{node_id}/status")
    owner.last("kws/kitchen/last_command")
    table = status(fleet)
    assert sorted(table) == ["attic", "garage", "kitchen"]
    kitchen = table["kitchen"]
    assert kitchen["online"] is True and kitchen["group"] == "downstairs"
    assert (kitchen["model_name"], kitchen["model_version"]) == ("test-model", "2.1.0")
    assert (kitchen["last_command"], kitchen["last_confidence"]) == ("left", 0.875)
    assert before - 1 <= kitchen["last_at"] <= time.time()
    assert kitchen["latency_ms"] == 1.5 and kitchen["uptime_s"] >= 0
    assert table["garage"]["online"] is True and table["garage"]["last_command"] == ""
    assert table["attic"]["online"] is None and table["attic"]["group"] == "upstairs"

    nodes["garage"].stop()
    owner.wait_for(lambda ms: [m for m in ms if m.topic == "kws/garage/availability"
                               and m.text == "offline"], what="garage offline")
    result = kws_fleet("status", "--once", "--inventory", str(fleet["inventory"]),
                       *fleet["args"])
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:-1]}
    assert rows["kitchen"][:6] == ["kitchen", "downstairs", "yes", "test-model", "2.1.0", "left"]
    assert "1.5 ms" in " ".join(rows["kitchen"])
    assert rows["garage"][:3] == ["garage", "outside", "NO"]
    assert rows["attic"][:3] == ["attic", "upstairs", "never"]
    assert result.stdout.splitlines()[-1] == "3 nodes, 1 online"


def test_discovery_carries_the_area_and_status_the_group(fleet):
    ha = Subscriber(fleet["broker"], "homeassistant/sensor/kitchen/uptime/config",
                    username="homeassistant", password=fleet["secrets"]["homeassistant"])
    assert ha.last("homeassistant/sensor/kitchen/uptime/config").json()["device"][
        "suggested_area"] == "Kitchen"
    ha.close()
    fleet["nodes"]["garage"].send("status")
    assert fleet["owner"].last("kws/garage/status").json()["group"] == "outside"


def test_set_reaches_a_group_a_node_or_all_and_reports_answers(fleet):
    nodes = fleet["nodes"]
    for node_id in nodes:
        nodes[node_id].send("status")
        fleet["owner"].last(f"kws/{node_id}/status")
    result = kws_fleet("set", "threshold", "0.3", "--group", "downstairs", *fleet["args"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["kitchen: ok (0.3)"]
    assert nodes["kitchen"].settings()["threshold"] == 0.3
    assert nodes["garage"].settings()["threshold"] == 0.6

    result = kws_fleet("set", "threshold", "5", "--node", "garage", *fleet["args"])
    assert result.returncode == 1
    assert result.stdout.startswith("garage: error (5 is outside 0.01..1)")

    nodes["garage"].stop()
    fleet["owner"].wait_for(lambda ms: [m for m in ms if m.topic == "kws/garage/availability"
                                        and m.text == "offline"], what="garage offline")
    result = kws_fleet("set", "listening", "OFF", "--all", "--inventory",
                       str(fleet["inventory"]), *fleet["args"])
    assert result.returncode == 1
    assert sorted(result.stdout.splitlines()) == ["attic: unknown", "garage: offline",
                                                  "kitchen: ok (OFF)"]
    assert nodes["kitchen"].settings()["listening"] is False


def test_set_refuses_unknown_settings_and_wrong_credentials(fleet):
    result = kws_fleet("set", "volume", "3", "--all", *fleet["args"])
    assert result.returncode == 2 and "unknown setting 'volume'" in result.stderr
    args = [a if a != "--password-file" else "--password" for a in fleet["args"]]
    args[-1] = "wrong"
    result = kws_fleet("status", "--json", *args)
    assert result.returncode == 2 and "refused kws-fleet" in result.stderr


def test_the_node_connection_turns_off_nagle(broker):  # noqa: F811
    """bench.fleet_status found HA-facing topics ~40 ms late: Nagle held the small publishes
    that follow a detection; the node's socket must have TCP_NODELAY."""
    conn = MqttConnection(MqttSettings(host="127.0.0.1", port=broker.port), "nagle")
    conn.start()
    try:
        assert conn.connected.wait(10)
        sock = conn.client.socket()
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        conn.close()
