"""The shipped Mosquitto config and ACL (ha_config/mosquitto) with TLS and passwords: a node
works with its own credentials, cannot reach another node's topics, and wrong credentials or
no TLS get nothing. Under MQTT 3.1.1 a denied publish is acknowledged and silently dropped, so
denial is checked with Home Assistant's subscriber."""

from __future__ import annotations

import json
import ssl
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.mqtt_broker import Broker, Subscriber
from tests.support.mqtt_node import REPO, ScriptedNode

pytestmark = pytest.mark.integration

HA_MOSQUITTO = REPO / "ha_config" / "mosquitto"
USERS = {"homeassistant": "ha-secret", "kitchen": "kitchen-secret", "garage": "garage-secret"}


def shipped_config(broker: Broker) -> str:
    text = (HA_MOSQUITTO / "mosquitto.conf").read_text()
    for old, new in {"listener 8883": f"listener {broker.port} 127.0.0.1",
                     "/etc/mosquitto/certs/ca.crt": str(broker.certs["ca"]),
                     "/etc/mosquitto/certs/server.crt": str(broker.certs["cert"]),
                     "/etc/mosquitto/certs/server.key": str(broker.certs["key"]),
                     "/etc/mosquitto/passwd": str(broker.folder / "passwd"),
                     "/etc/mosquitto/acl": str(HA_MOSQUITTO / "acl"),
                     "/var/lib/mosquitto/": f"{broker.folder}/"}.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


@pytest.fixture
def secure_broker(tmp_path):
    b = Broker(tmp_path / "broker", users=USERS, tls=True, render=shipped_config).start()
    yield b
    b.stop()


def client(broker: Broker, user: str, password: str, tls: bool = True) -> tuple[mqtt.Client,
                                                                                 list[str]]:
    """A connected client and the reason codes its CONNACKs carried."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-probe")
    c.username_pw_set(user, password)
    if tls:
        c.tls_set(ca_certs=str(broker.certs["ca"]), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    reasons: list[str] = []
    done = threading.Event()

    def on_connect(*args: object) -> None:
        reasons.append(str(args[3]))
        done.set()

    c.on_connect = on_connect
    c.connect_async("127.0.0.1", broker.port)
    c.loop_start()
    done.wait(5)
    return c, reasons


def node_settings(broker: Broker, password: str = USERS["kitchen"]) -> dict:
    return {"host": "127.0.0.1", "port": broker.port, "username": "kitchen",
            "password": password, "tls": {"ca_file": str(broker.certs["ca"])}}


def test_a_node_cannot_publish_to_another_nodes_topics(secure_broker, tmp_path):
    ha = Subscriber(secure_broker, "#", username="homeassistant", password=USERS["homeassistant"],
                    ca=secure_broker.certs["ca"])
    node = ScriptedNode(tmp_path / "node", node_settings(secure_broker))
    try:
        ha.wait_for(lambda ms: [m for m in ms if m.topic == "kws/kitchen/availability"
                                and m.text == "online"], what="node online over TLS")
        ha.last("homeassistant/number/kitchen/threshold/config")
        garage, reasons = client(secure_broker, "garage", USERS["garage"])
        assert reasons == ["Success"]
        forged = {"kws/kitchen/threshold/set": "0.01", "kws/kitchen/availability": "offline",
                  "kws/kitchen/detection": json.dumps({"command": "stop", "seq": 999}),
                  "homeassistant/switch/kitchen/listening/config": "{}",
                  "homeassistant/status": "online"}
        for topic, payload in forged.items():
            garage.publish(topic, payload, qos=1).wait_for_publish(5)
        garage.publish("kws/garage/detection", "allowed", qos=1).wait_for_publish(5)
        ha.last("kws/garage/detection")
        for topic, payload in forged.items():
            assert payload not in [m.text for m in ha.on(topic)], topic
        assert node.settings()["threshold"] == 0.6
        assert "Denied PUBLISH from garage-probe" in secure_broker.log()
        ha.publish("kws/kitchen/threshold/set", "0.3")
        ha.wait_for(lambda ms: [m for m in ms if m.topic == "kws/kitchen/threshold"
                                and m.text == "0.3"], what="HA may control the node")
        garage.disconnect()
    finally:
        assert node.stop() == 0


@pytest.mark.parametrize(("user", "password", "tls", "expect"), [
    ("kitchen", "wrong", True, "Not authorized"),
    ("nobody", "x", True, "Not authorized"),
    ("anonymous", "", True, "Not authorized"),
    ("kitchen", USERS["kitchen"], False, None),
])
def test_bad_credentials_or_plain_tcp_are_refused(secure_broker, user, password, tls, expect):
    c, reasons = client(secure_broker, user, password, tls=tls)
    c.disconnect()
    c.loop_stop()
    assert reasons == ([expect] if expect else [])


def test_a_node_with_a_wrong_password_never_says_online(secure_broker, tmp_path):
    ha = Subscriber(secure_broker, "kws/#", username="homeassistant",
                    password=USERS["homeassistant"], ca=secure_broker.certs["ca"])
    node = ScriptedNode(tmp_path / "node", node_settings(secure_broker, password="wrong"))
    try:
        deadline = time.monotonic() + 10
        while "refused the connection" not in node.log_path.read_text():
            assert time.monotonic() < deadline, "the refusal was not logged"
            time.sleep(0.1)
        assert ha.on("kws/kitchen/availability") == []
        assert node.alive()
    finally:
        node.stop()
