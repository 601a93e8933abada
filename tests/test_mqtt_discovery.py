"""Home Assistant discovery as a real broker carries it: exact topics and payloads, HA restart
re-announce, removal of vanished commands and `edge-node forget`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edge_node import __version__
from edge_node.mqtt.extension import THERMAL
from tests.support.mqtt_broker import Subscriber, broker  # noqa: F401
from tests.support.mqtt_node import CHECK_MANIFEST_THRESHOLD, REPO, ScriptedNode

pytestmark = pytest.mark.integration

PREFIX = "homeassistant"
BASE = "kws/kitchen"
DEVICE = {"identifiers": ["kws_kitchen"], "name": "Kitchen", "manufacturer": "kws-edge-node",
          "model": "Voice command node (test-model)", "sw_version": f"{__version__} (model 1.0.0)"}
ORIGIN = {"name": "kws-edge-node", "sw_version": __version__,
          "support_url": "https://github.com/kws-edge-node/kws-edge-node"}
COMMON = {"availability_topic": f"{BASE}/availability", "device": DEVICE, "origin": ORIGIN}
ENTITIES = {
    "event/kitchen/command": {"name": "Command", "state_topic": f"{BASE}/event",
                              "event_types": ["stop", "go", "left", "yes"],
                              "icon": "mdi:microphone-message"},
    "sensor/kitchen/last_command": {
        "name": "Last command", "state_topic": f"{BASE}/last_command",
        "value_template": "{{ value_json.command }}",
        "json_attributes_topic": f"{BASE}/last_command", "icon": "mdi:account-voice"},
    "sensor/kitchen/confidence": {
        "name": "Confidence", "state_topic": f"{BASE}/last_command",
        "value_template": "{{ value_json.confidence }}", "state_class": "measurement",
        "icon": "mdi:percent-circle"},
    "sensor/kitchen/latency": {
        "name": "Inference latency", "state_topic": f"{BASE}/status",
        "value_template": "{{ value_json.latency_ms }}", "entity_category": "diagnostic",
        "unit_of_measurement": "ms", "device_class": "duration", "state_class": "measurement"},
    "sensor/kitchen/audio_level": {
        "name": "Audio level", "state_topic": f"{BASE}/status",
        "value_template": "{{ value_json.level_dbfs }}", "entity_category": "diagnostic",
        "unit_of_measurement": "dBFS", "state_class": "measurement", "icon": "mdi:waveform"},
    "sensor/kitchen/uptime": {
        "name": "Uptime", "state_topic": f"{BASE}/status",
        "value_template": "{{ value_json.uptime_s }}", "entity_category": "diagnostic",
        "unit_of_measurement": "s", "device_class": "duration", "state_class": "measurement"},
    "sensor/kitchen/detections": {
        "name": "Detections", "state_topic": f"{BASE}/status",
        "value_template": "{{ value_json.detections }}", "entity_category": "diagnostic",
        "state_class": "total_increasing", "icon": "mdi:counter"},
    "sensor/kitchen/model_version": {
        "name": "Model version", "state_topic": f"{BASE}/status",
        "value_template": "{{ value_json.model_version }}", "entity_category": "diagnostic",
        "icon": "mdi:brain"},
    "sensor/kitchen/problem": {
        "name": "Problem", "state_topic": f"{BASE}/status",
        "value_template": "{{ value_json.problem }}", "entity_category": "diagnostic",
        "icon": "mdi:alert-circle-outline"},
    "number/kitchen/threshold": {
        "name": "Detection threshold", "command_topic": f"{BASE}/threshold/set",
        "state_topic": f"{BASE}/threshold", "min": 0.01, "max": 1.0, "step": 0.01,
        "mode": "slider", "entity_category": "config", "icon": "mdi:tune"},
    "number/kitchen/refractory": {
        "name": "Cooldown", "command_topic": f"{BASE}/refractory/set",
        "state_topic": f"{BASE}/refractory", "min": 0.0, "max": 10.0, "step": 0.1,
        "mode": "box", "unit_of_measurement": "s", "entity_category": "config",
        "icon": "mdi:timer-sand"},
    "number/kitchen/isolation": {
        "name": "Talk rejection", "command_topic": f"{BASE}/isolation/set",
        "state_topic": f"{BASE}/isolation", "min": 0.0, "max": 1.0, "step": 0.01,
        "mode": "slider", "entity_category": "config", "icon": "mdi:account-voice-off"},
    "switch/kitchen/listening": {
        "name": "Listening", "command_topic": f"{BASE}/listening/set",
        "state_topic": f"{BASE}/listening", "payload_on": "ON", "payload_off": "OFF",
        "icon": "mdi:microphone"},
    "update/kitchen/model": {
        "name": "Model", "state_topic": f"{BASE}/model/status",
        "command_topic": f"{BASE}/model/install", "payload_install": "install",
        "entity_category": "config", "icon": "mdi:brain"},
    "button/kitchen/restart": {
        "name": "Restart", "command_topic": f"{BASE}/restart/set", "payload_press": "PRESS",
        "device_class": "restart", "entity_category": "config"},
}


def expected_entity(path: str) -> dict:
    key = path.rsplit("/", 1)[1]
    return {**ENTITIES[path], "unique_id": f"kitchen_{key}", "object_id": f"kitchen_{key}",
            **COMMON}


def expected_trigger(command: str) -> dict:
    return {"automation_type": "trigger", "type": "command", "subtype": command,
            "topic": f"{BASE}/trigger/{command}", "device": DEVICE, "origin": ORIGIN}


def configs(sub: Subscriber) -> dict[str, dict]:
    """Latest retained discovery config per topic (empty payload: removed)."""
    out: dict[str, dict] = {}
    for m in sub.messages:
        if m.topic.startswith(f"{PREFIX}/") and m.topic.endswith("/config"):
            out[m.topic] = m.json() if m.payload else {}
    return out


def expected_topics(commands: list[str]) -> set[str]:
    thermal = {f"{PREFIX}/sensor/kitchen/cpu_temperature/config"} if THERMAL.exists() else set()
    return ({f"{PREFIX}/{path}/config" for path in ENTITIES} | thermal
            | {f"{PREFIX}/device_automation/kitchen/heard_{c}/config" for c in commands})


ALL = len(expected_topics(["stop", "go", "left", "yes"]))


def test_every_entity_is_announced_retained_with_its_exact_payload(broker, tmp_path):  # noqa: F811
    node = ScriptedNode(tmp_path / "node", {"host": "127.0.0.1", "port": broker.port})
    try:
        sub = Subscriber(broker, f"{PREFIX}/#", f"{BASE}/#")
        sub.wait_for(lambda ms: len(configs(sub)) >= ALL, what="all discovery configs")
        found = configs(sub)
        assert set(found) == expected_topics(["stop", "go", "left", "yes"])
        for path in ENTITIES:
            assert found[f"{PREFIX}/{path}/config"] == expected_entity(path), path
        for command in ("stop", "go", "left", "yes"):
            topic = f"{PREFIX}/device_automation/kitchen/heard_{command}/config"
            assert found[topic] == expected_trigger(command)
        late = Subscriber(broker, f"{PREFIX}/#")
        late.wait_for(lambda ms: len(configs(late)) >= ALL, what="retained configs")
        assert configs(late) == found and all(m.retain for m in late.messages)
        assert sub.last(f"{BASE}/availability").text == "online"
        assert sub.last(f"{BASE}/threshold").text == "0.6"
        assert sub.last(f"{BASE}/refractory").text == "1.5"
        assert sub.last(f"{BASE}/isolation").text == f"{CHECK_MANIFEST_THRESHOLD:g}"
        assert sub.last(f"{BASE}/listening").text == "ON"
    finally:
        assert node.stop() == 0


def test_home_assistant_restart_makes_the_node_announce_again(broker, tmp_path):  # noqa: F811
    node = ScriptedNode(tmp_path / "node", {"host": "127.0.0.1", "port": broker.port})
    try:
        sub = Subscriber(broker, f"{PREFIX}/#", f"{BASE}/#")
        sub.wait_for(lambda ms: len(configs(sub)) >= ALL)
        node.send("status")
        sub.last(f"{BASE}/status")
        sub.messages.clear()
        sub.publish(f"{PREFIX}/status", "offline")
        sub.publish(f"{PREFIX}/status", "online")
        sub.wait_for(lambda ms: len(configs(sub)) >= ALL, what="re-announced configs")
        assert set(configs(sub)) == expected_topics(["stop", "go", "left", "yes"])
        assert sub.last(f"{BASE}/availability").text == "online"
        assert sub.last(f"{BASE}/status").json()["model_version"] == "1.0.0"
        assert sub.last(f"{BASE}/listening").text == "ON"
    finally:
        node.stop()


def test_commands_missing_from_a_new_model_lose_their_triggers(broker, tmp_path):  # noqa: F811
    mqtt = {"host": "127.0.0.1", "port": broker.port}
    old = ScriptedNode(tmp_path / "node", mqtt, labels="stop,go,left,yes,_unknown_")
    sub = Subscriber(broker, f"{PREFIX}/#")
    sub.wait_for(lambda ms: len(configs(sub)) >= ALL)
    old.stop()
    node = ScriptedNode(tmp_path / "node", mqtt, labels="stop,go,up,_unknown_", version="2.0.0")
    try:
        sub.wait_for(lambda ms: len([m for m in ms if "heard_up" in m.topic]))
        found = configs(sub)
        triggers = {t for t, payload in found.items() if "device_automation" in t and payload}
        assert triggers == {f"{PREFIX}/device_automation/kitchen/heard_{c}/config"
                            for c in ("stop", "go", "up")}
        assert found[f"{PREFIX}/device_automation/kitchen/heard_left/config"] == {}
        event = found[f"{PREFIX}/event/kitchen/command/config"]
        assert event["event_types"] == ["stop", "go", "up"]
    finally:
        node.stop()


def test_forget_removes_every_retained_topic_of_the_node(broker, tmp_path):  # noqa: F811
    node = ScriptedNode(tmp_path / "node", {"host": "127.0.0.1", "port": broker.port})
    sub = Subscriber(broker, f"{PREFIX}/#", f"{BASE}/#")
    sub.wait_for(lambda ms: len(configs(sub)) >= ALL)
    node.stop()
    done = subprocess.run([sys.executable, "-m", "edge_node", "forget", "--config",
                           str(node.config), "--model", str(tmp_path / "none.tflite")],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    sub.wait_for(lambda ms: len([m for m in ms if not m.payload]) >= 22, what="removals")
    fresh = Subscriber(broker, f"{PREFIX}/#", f"{BASE}/#", "probe/end")
    fresh.publish("probe/end", "x")
    fresh.last("probe/end")
    assert [m.topic for m in fresh.messages if m.retain] == []
    assert json.loads((tmp_path / "node/state/kitchen-state.json").read_text())[
        "announced_commands"] == []
