"""End to end: `edge-node run --source wav:FILE` with the real Agent and model, over MQTT.

Needs a model: the bundled default, or $KWS_TEST_MODEL (a .tflite with its manifest)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edge_node.isolation import DEFAULT_ISOLATION_MODEL
from edge_node.model import DEFAULT_MODEL, Manifest
from tests.support.audio_signals import noise, write_wav
from tests.support.mqtt_broker import Subscriber, broker  # noqa: F401
from tests.support.mqtt_node import REPO

MODEL = Path(os.environ.get("KWS_TEST_MODEL", DEFAULT_MODEL))
BASE = "kws/kitchen"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not MODEL.is_file(), reason=f"no model at {MODEL}"),
]


def test_run_on_a_wav_publishes_each_spoken_command(broker, tmp_path,  # noqa: F811
                                                    command_recording):
    path, events = command_recording
    config = tmp_path / "node.yaml"
    config.write_text(yaml.safe_dump({"mqtt": {"state_dir": str(tmp_path / "state")}}))
    sub = Subscriber(broker, f"{BASE}/#", "homeassistant/#")
    done = subprocess.run(
        [sys.executable, "-m", "edge_node", "run", "--config", str(config), "--source",
         f"wav:{path}", "--model", str(MODEL), "--node-id", "kitchen", "--mqtt-host",
         "127.0.0.1", "--mqtt-port", str(broker.port)],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = [json.loads(line) for line in done.stdout.splitlines()]
    detections = sub.wait_for(lambda ms: len(sub.on(f"{BASE}/detection")) >= len(printed)
                              and sub.on(f"{BASE}/detection"), what="detections")
    bodies = [m.json() for m in detections]
    assert [b["command"] for b in bodies] == [e[0] for e in events]
    assert [b["command"] for b in bodies] == [p["label"] for p in printed]
    assert [b["seq"] for b in bodies] == list(range(1, len(events) + 1))
    assert [b["timestamp"] for b in bodies] == [p["timestamp"] for p in printed]
    assert [m.json()["event_type"] for m in sub.on(f"{BASE}/event")] == [e[0] for e in events]
    check = json.loads(DEFAULT_ISOLATION_MODEL.with_suffix(".json").read_text())
    assert sub.last(f"{BASE}/isolation").text == f"{check['detector']['threshold']:g}"
    labels = json.loads(MODEL.with_suffix(".json").read_text())["labels"]
    event_config = sub.last("homeassistant/event/kitchen/command/config").json()
    assert event_config["event_types"] == [x for x in labels if Manifest.is_command(x)]
    # the status sent as the node stops counts every detection (it may reach us after them)
    final = sub.wait_for(lambda ms: [m.json() for m in ms if m.topic == f"{BASE}/status"
                                     and m.json()["detections"] == len(events)],
                         what="a status counting every detection")[-1]
    assert final["latency_ms"] > 0
    sub.wait_for(lambda ms: [m.text for m in ms if m.topic == f"{BASE}/availability"][-1:]
                 == ["offline"], what="availability offline")


def test_run_restores_saved_settings_into_the_real_agent(broker, tmp_path):  # noqa: F811
    state = tmp_path / "state"
    state.mkdir()
    (state / "kitchen-state.json").write_text(json.dumps(
        {"controls": {"threshold": "0.45", "refractory": "2", "isolation": "0.2",
                      "listening": "OFF"}}))
    config = tmp_path / "node.yaml"
    config.write_text(yaml.safe_dump({"mqtt": {"state_dir": str(state)}}))
    wav = write_wav(tmp_path / "quiet.wav", noise(2.0, -50))
    sub = Subscriber(broker, f"{BASE}/#")
    done = subprocess.run(
        [sys.executable, "-m", "edge_node", "run", "--config", str(config), "--source",
         f"wav:{wav}", "--model", str(MODEL), "--node-id", "kitchen", "--mqtt-host",
         "127.0.0.1", "--mqtt-port", str(broker.port)],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sub.last(f"{BASE}/threshold").text == "0.45"
    assert sub.last(f"{BASE}/refractory").text == "2"
    assert sub.last(f"{BASE}/isolation").text == "0.2"
    assert sub.last(f"{BASE}/listening").text == "OFF"
    assert sub.last(f"{BASE}/status").json()["listening"] is False
    assert "restored threshold = 0.45" in done.stderr
