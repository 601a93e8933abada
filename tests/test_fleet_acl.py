"""The ACL and password file written by `kws-fleet render`, loaded into a real Mosquitto: a node
can use its own topics and read the model topics of the fleet and its own group only; it cannot
push models (fleet, group, nor its own) or touch another node; the fleet owner and Home
Assistant can do their jobs. Publishes use MQTT 5, where a denied QoS 1 publish is answered
with reason 135 (under 3.1.1 it would be silently dropped)."""

from __future__ import annotations

import threading
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from provisioning.acl import node_patterns
from tests.support.fleet_helpers import fleet_broker, passwords, render_fleet
from tests.support.mqtt_node import REPO

pytestmark = pytest.mark.integration

ALLOWED = {"Success", "No matching subscribers"}
DENIED = "Not authorized"


class Probe:
    """An MQTT 5 client that reports the broker's reason code for each QoS 1 publish."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id=f"{user}-{uuid.uuid4().hex[:6]}")
        self.client.username_pw_set(user, password)
        self.acks: dict[int, str] = {}
        self.received: list[str] = []
        self.cond = threading.Condition()
        self.connected: list[str] = []
        self.client.on_publish = self._acked
        self.client.on_message = self._message
        self.client.on_connect = lambda c, u, f, reason, p: self._note_connect(str(reason))
        self.client.on_subscribe = lambda *_: self._note_connect("subscribed")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.wait(lambda: self.connected, "CONNACK")

    def _note_connect(self, what: str) -> None:
        with self.cond:
            self.connected.append(what)
            self.cond.notify_all()

    def _acked(self, client, userdata, mid, reason, properties) -> None:
        with self.cond:
            self.acks[mid] = str(reason)
            self.cond.notify_all()

    def _message(self, client, userdata, msg) -> None:
        with self.cond:
            self.received.append(msg.topic)
            self.cond.notify_all()

    def wait(self, predicate, what: str) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, 10), f"timed out waiting for {what}"

    def publish(self, topic: str) -> str:
        mid = self.client.publish(topic, b"x", qos=1).mid
        self.wait(lambda: mid in self.acks, f"PUBACK of {topic}")
        return self.acks[mid]

    def subscribe(self, *topics: str) -> None:
        count = len(self.connected)
        self.client.subscribe([(t, 1) for t in topics])
        self.wait(lambda: len(self.connected) > count, "SUBACK")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fleet")
    _, out = render_fleet(folder)
    broker = fleet_broker(out, folder / "broker")
    probes: dict[str, Probe] = {}

    def probe(user: str) -> Probe:
        if user not in probes:
            probes[user] = Probe(broker.port, user, passwords(out)[user])
        return probes[user]

    probe.port = broker.port  # type: ignore[attr-defined]
    yield probe
    for p in probes.values():
        p.close()
    broker.stop()


NODE_MAY_WRITE = ["kws/kitchen/availability", "kws/kitchen/status", "kws/kitchen/detection",
                  "kws/kitchen/last_command", "kws/kitchen/trigger/stop",
                  "kws/kitchen/model/request", "kws/kitchen/model/status",
                  "homeassistant/sensor/kitchen/latency/config"]
NODE_MAY_NOT_WRITE = [
    "kws/_fleet/model/offer", "kws/_fleet/model/chunk/t1/0", "kws/_group/downstairs/model/offer",
    "kws/_group/outside/model/chunk/t1/0", "kws/kitchen/model/offer",
    "kws/kitchen/model/chunk/t1/0", "kws/kitchen/model/install", "kws/garage/threshold/set",
    "kws/garage/availability", "kws/garage/model/offer", "kws/garage/model/status",
    "homeassistant/sensor/garage/latency/config", "homeassistant/status"]


@pytest.mark.parametrize("topic", NODE_MAY_WRITE)
def test_a_node_may_publish_its_own_topics(fleet, topic):
    assert fleet("kitchen").publish(topic) in ALLOWED


@pytest.mark.parametrize("topic", NODE_MAY_NOT_WRITE)
def test_a_node_may_not_push_models_or_touch_other_nodes(fleet, topic):
    assert fleet("kitchen").publish(topic) == DENIED


@pytest.mark.parametrize("topic", ["kws/_fleet/model/offer", "kws/_group/outside/model/offer",
                                   "kws/kitchen/model/chunk/t1/0", "kws/garage/threshold/set",
                                   "kws/garage/model/install"])
def test_the_fleet_owner_may_push_models_and_control_nodes(fleet, topic):
    assert fleet("kws-fleet").publish(topic) in ALLOWED


@pytest.mark.parametrize(("topic", "allowed"), [
    ("kws/kitchen/threshold/set", True), ("kws/kitchen/model/install", True),
    ("homeassistant/status", True), ("homeassistant/light/other/config", True),
    ("zigbee2mqtt/lamp/set", True),
    ("kws/_fleet/model/offer", False), ("kws/_group/downstairs/model/chunk/t1/0", False),
    ("kws/kitchen/model/offer", False), ("kws/kitchen/model/chunk/t1/0", False)])
def test_home_assistant_may_control_and_install_but_not_push_models(fleet, topic, allowed):
    assert (fleet("homeassistant").publish(topic) in ALLOWED) is allowed


def test_a_node_reads_its_own_and_its_groups_model_topics_only(fleet):
    kitchen = fleet("kitchen")
    kitchen.subscribe("kws/_fleet/model/#", "kws/_group/+/model/#", "kws/kitchen/model/#",
                      "kws/garage/#", "homeassistant/status")
    owner, ha = fleet("kws-fleet"), fleet("homeassistant")
    sent = ["kws/_group/outside/model/offer", "kws/garage/model/offer", "kws/garage/status",
            "kws/_fleet/model/offer", "kws/_group/downstairs/model/offer",
            "kws/kitchen/model/chunk/t1/0"]
    for topic in sent:
        assert owner.publish(topic) in ALLOWED
    assert ha.publish("homeassistant/status") in ALLOWED
    kitchen.wait(lambda: "homeassistant/status" in kitchen.received, "HA's birth")
    assert kitchen.received == ["kws/_fleet/model/offer", "kws/_group/downstairs/model/offer",
                                "kws/kitchen/model/chunk/t1/0", "homeassistant/status"]


def test_owner_and_home_assistant_read_what_nodes_report(fleet):
    owner, ha = fleet("kws-fleet"), fleet("homeassistant")
    owner.subscribe("kws/+/model/status", "kws/+/status")
    ha.subscribe("kws/+/model/status", "homeassistant/sensor/+/+/config")
    garage = fleet("garage")
    for topic in ("kws/garage/model/status", "kws/garage/status",
                  "homeassistant/sensor/garage/uptime/config"):
        assert garage.publish(topic) in ALLOWED
    owner.wait(lambda: "kws/garage/status" in owner.received, "node status at the owner")
    ha.wait(lambda: "homeassistant/sensor/garage/uptime/config" in ha.received, "discovery")
    assert "kws/garage/model/status" in owner.received
    assert "kws/garage/model/status" in ha.received


def test_a_wrong_password_is_refused(fleet):
    bad = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, client_id="bad")
    bad.username_pw_set("kitchen", "not-the-password")
    reasons: list[str] = []
    done = threading.Event()
    bad.on_connect = lambda c, u, f, reason, p: (reasons.append(str(reason)), done.set())
    bad.connect("127.0.0.1", fleet.port)
    bad.loop_start()
    done.wait(10)
    bad.loop_stop()
    assert reasons == ["Not authorized"]


def test_the_shipped_example_acl_has_the_generated_node_rules():
    shipped = (REPO / "ha_config" / "mosquitto" / "acl").read_text().splitlines()
    assert [ln for ln in shipped if ln.startswith("pattern ")] == node_patterns()
