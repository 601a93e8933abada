"""Controls from Home Assistant: applied live, echoed retained, persisted across restarts;
malformed payloads change nothing, are answered on <base>/error, and the node keeps running."""

from __future__ import annotations

import json

import pytest

from tests.support.mqtt_broker import Subscriber, broker  # noqa: F401
from tests.support.mqtt_node import ScriptedNode

pytestmark = pytest.mark.integration

BASE = "kws/kitchen"

ROUND_TRIPS = [
    ("threshold", "0.35", "0.35", ("threshold", 0.35)),
    ("threshold", "1", "1", ("threshold", 1.0)),
    ("threshold", "0.01", "0.01", ("threshold", 0.01)),
    ("threshold", " .5 ", "0.5", ("threshold", 0.5)),
    ("refractory", "2.5", "2.5", ("refractory_s", 2.5)),
    ("refractory", "0", "0", ("refractory_s", 0.0)),
    ("refractory", "10", "10", ("refractory_s", 10.0)),
    ("isolation", "0.2", "0.2", ("isolation_threshold", 0.2)),
    ("isolation", "0", "0", ("isolation_threshold", 0.0)),
    ("isolation", "1", "1", ("isolation_threshold", 1.0)),
    ("listening", "OFF", "OFF", ("listening", False)),
    ("listening", "on", "ON", ("listening", True)),
]

MALFORMED = {
    "threshold": ["", " ", "abc", "0", "0.0", "0.009", "1.5", "-0.1", "2", "nan", "NaN", "inf",
                  "-inf", "1e3",
                  "0x1", "1_0", "0,5", "½", "0.5.1", "true", "ON", "null", "[0.5]",
                  '{"value": 0.5}', '"0.5"', "0.5 0.6", "+", "-", ".", "e5", "1e", "0.5%",
                  "9" * 70, "\x00", "0.5\x00", b"\xff\xfe", b"\xc3\x28", "１"],
    "refractory": ["", "-1", "10.01", "11", "1e9", "nan", "inf", "fast", "1s", "1,5",
                   "OFF", "[]"],
    "isolation": ["", "-0.01", "1.01", "nan", "inf", "off", "ON", "0,3", "[]", b"\xff"],
    "listening": ["", "yes", "no", "1", "0", "true", "false", "ONN", "O N", "of", "PRESS",
                  '{"state": "ON"}', b"\xff"],
    "restart": ["", "press", "Press", "ON", "1", "PRESS!", " PRESSX", b"\x80"],
}


@pytest.fixture
def node_and_ha(broker, tmp_path):  # noqa: F811
    node = ScriptedNode(tmp_path / "node", {"host": "127.0.0.1", "port": broker.port})
    sub = Subscriber(broker, f"{BASE}/#")
    sub.last(f"{BASE}/listening")
    yield node, sub
    node.stop()


def states(sub: Subscriber, key: str) -> list[str]:
    return [m.text for m in sub.on(f"{BASE}/{key}")]


def test_every_setting_round_trips_live_and_survives_a_restart(broker, tmp_path):  # noqa: F811
    folder = tmp_path / "node"
    node = ScriptedNode(folder, {"host": "127.0.0.1", "port": broker.port})
    sub = Subscriber(broker, f"{BASE}/#")
    sub.last(f"{BASE}/threshold")
    for key, payload, state, (field, value) in ROUND_TRIPS:
        before = len(states(sub, key))
        sub.publish(f"{BASE}/{key}/set", payload)
        sub.wait_for(lambda ms, k=key, n=before: len(states(sub, k)) > n, what=key)
        assert states(sub, key)[-1] == state
        assert node.settings()[field] == value
    sub.publish(f"{BASE}/threshold/set", "0.42")
    sub.publish(f"{BASE}/refractory/set", "3")
    sub.publish(f"{BASE}/isolation/set", "0.55")
    sub.publish(f"{BASE}/listening/set", "OFF")
    sub.wait_for(lambda ms: states(sub, "listening")[-1:] == ["OFF"])
    assert node.stop() == 0
    saved = json.loads((folder / "state" / "kitchen-state.json").read_text())["controls"]
    assert saved == {"threshold": "0.42", "refractory": "3", "isolation": "0.55",
                     "listening": "OFF"}

    again = ScriptedNode(folder, {"host": "127.0.0.1", "port": broker.port})
    try:
        assert again.settings() == {"threshold": 0.42, "refractory_s": 3.0,
                                    "isolation_threshold": 0.55, "listening": False}
        fresh = Subscriber(broker, f"{BASE}/+")
        fresh.wait_for(lambda ms: fresh.on(f"{BASE}/availability")[-1:]
                       and fresh.on(f"{BASE}/availability")[-1].text == "online")
        assert fresh.last(f"{BASE}/threshold").text == "0.42"
        assert fresh.last(f"{BASE}/refractory").text == "3"
        assert fresh.last(f"{BASE}/isolation").text == "0.55"
        assert fresh.last(f"{BASE}/listening").text == "OFF"
    finally:
        again.stop()


def test_listening_off_drops_detections_on_the_node(node_and_ha):
    node, sub = node_and_ha
    sub.publish(f"{BASE}/listening/set", "OFF")
    sub.wait_for(lambda ms: states(sub, "listening")[-1:] == ["OFF"])
    node.send("detect stop 0.9")
    sub.publish(f"{BASE}/listening/set", "ON")
    sub.wait_for(lambda ms: states(sub, "listening")[-1:] == ["ON"])
    node.send("detect go 0.8")
    first = sub.last(f"{BASE}/detection").json()
    assert first["command"] == "go" and first["seq"] == 1


def test_malformed_payloads_change_nothing_and_are_reported(node_and_ha):
    node, sub = node_and_ha
    before = node.settings()
    sent = [(key, p) for key, payloads in MALFORMED.items() for p in payloads]
    assert len(sent) >= 50
    for key, payload in sent:
        sub.publish(f"{BASE}/{key}/set", payload)
    errors = sub.wait_for(lambda ms: len(sub.on(f"{BASE}/error")) >= len(sent) and
                          sub.on(f"{BASE}/error"), what=f"{len(sent)} errors")
    assert len(errors) == len(sent)
    for (key, _), error in zip(sent, errors, strict=True):
        body = error.json()
        assert body["topic"] == f"{BASE}/{key}/set" and body["error"]
        assert not error.retain
    assert node.alive()
    assert node.settings() == before
    for key in ("threshold", "refractory", "isolation", "listening"):
        assert len(states(sub, key)) == 1, key
    sub.publish(f"{BASE}/threshold/set", "0.7")
    sub.wait_for(lambda ms: states(sub, "threshold")[-1:] == ["0.7"])
    assert "rejected" in node.log_path.read_text()


def test_restart_button_restarts_the_node_process(node_and_ha):
    node, sub = node_and_ha
    sub.publish(f"{BASE}/threshold/set", "0.55")
    sub.wait_for(lambda ms: states(sub, "threshold")[-1:] == ["0.55"])
    sub.messages.clear()
    sub.publish(f"{BASE}/restart/set", "PRESS")
    assert node.read_line().split() == ["started", str(node.pid)]
    sub.wait_for(lambda ms: [m.text for m in sub.on(f"{BASE}/availability")][-2:]
                 == ["offline", "online"], what="offline then online")
    assert node.settings()["threshold"] == 0.55


def test_a_change_made_outside_mqtt_is_published_and_saved(node_and_ha, tmp_path):
    node, sub = node_and_ha
    sub.publish(f"{BASE}/threshold/set", "0.8")
    sub.wait_for(lambda ms: states(sub, "threshold")[-1:] == ["0.8"])
    node.send("reload 0.3")
    node.send("status")
    sub.wait_for(lambda ms: states(sub, "threshold")[-1:] == ["0.3"], what="synced threshold")
    saved = json.loads((tmp_path / "node/state/kitchen-state.json").read_text())["controls"]
    assert saved["threshold"] == "0.3"
    node.send("status")
    sub.wait_for(lambda ms: len(sub.on(f"{BASE}/status")) >= 2, what="second status")
    assert states(sub, "threshold") == ["0.6", "0.8", "0.3"]
