"""A node process for MQTT tests that needs no model: the node as `edge_node.node.build_node`
builds it (MQTT, OTA) around a scripted stand-in for the Agent, driven line by line on stdin.

stdin: `detect LABEL CONFIDENCE`, `status`, `settings` (prints the agent's live settings as a
JSON line on stdout), `reload THRESHOLD` (what a SIGHUP with a new node.yaml does), `quit`.
Run as `python -m tests.support.mqtt_node CONFIG LABELS VERSION`.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from edge_node.config import load_config
from edge_node.detector import Detection, DetectorSettings
from edge_node.events import Detected, EventHub, Status
from edge_node.logs import setup_logging

REPO = Path(__file__).resolve().parents[2]
CHECK_MANIFEST_THRESHOLD = 0.4
"""The isolation threshold the scripted agent's stand-in check manifest recommends."""


class ScriptedAgent:
    """An `edge_node.node.AgentControl` that detects what stdin tells it to."""

    def __init__(self, detector: DetectorSettings, labels: list[str], version: str) -> None:
        self.hub = EventHub()
        self.model = SimpleNamespace(name="test-model", version=version, labels=labels)
        self.detector = SimpleNamespace(settings=detector.resolved(None, CHECK_MANIFEST_THRESHOLD),
                                        requested=detector)
        self.listening = True
        self.detections = 0
        self._stop = threading.Event()
        self._lines: queue.SimpleQueue[str] = queue.SimpleQueue()

    @property
    def detector_settings(self) -> DetectorSettings:
        return self.detector.settings

    @property
    def detector_requested(self) -> DetectorSettings:
        return self.detector.requested

    def set_listening(self, listening: bool) -> None:
        self.listening = listening

    def update_detector(self, settings: DetectorSettings) -> None:
        self.detector.requested = settings
        self.detector.settings = settings.resolved(None, CHECK_MANIFEST_THRESHOLD)

    def stop(self) -> None:
        self._stop.set()

    def run(self, heartbeat: Callable[[], None] = lambda: None) -> None:
        print("started", os.getpid(), flush=True)
        threading.Thread(target=self._read, daemon=True).start()
        while not self._stop.is_set():
            try:
                line = self._lines.get(timeout=0.05)
            except queue.Empty:
                continue
            if not self.handle(line.split()):
                break

    def _read(self) -> None:
        for line in sys.stdin:
            self._lines.put(line)
        self._lines.put("quit")

    def handle(self, words: list[str]) -> bool:
        if words[:1] == ["detect"] and self.listening:
            self.detections += 1
            self.hub.publish(Detected(Detection(words[1], float(words[2]), 1.0),
                                      self.model.version, time.time()))
        elif words[:1] == ["status"]:
            self.hub.publish(Status(-40.0, 1.5, 10, self.detections, 12.0, self.listening))
        elif words[:1] == ["reload"]:
            self.update_detector(DetectorSettings(threshold=float(words[1])))
        elif words[:1] == ["settings"]:
            s = self.detector.settings
            print(json.dumps({"threshold": s.threshold, "refractory_s": s.refractory_s,
                              "isolation_threshold": s.isolation_threshold,
                              "listening": self.listening}), flush=True)
        return words[:1] != ["quit"]


def main() -> None:
    from edge_node.node import build_node

    config_path, labels, version = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
    config = load_config(Path(config_path))
    setup_logging("INFO")
    agent = ScriptedAgent(config.detector, labels, version)
    build_node(config, agent=agent, stdout=False, display=False).run()


class ScriptedNode:
    """Test side: starts `python -m tests.support.mqtt_node`, sends lines, reads stdout lines.
    (`tests.support.node_process.NodeProcess` is the real `edge-node run` under systemd.)"""

    def __init__(self, folder: Path, mqtt: dict[str, Any], node_id: str = "kitchen",
                 labels: str = "stop,go,left,yes,_unknown_,_silence_",
                 version: str = "1.0.0", source: str = "mic",
                 identity: dict[str, str] | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "node.yaml"
        settings = {"state_dir": str(folder / "state"), "keepalive": 5, "reconnect_max_s": 2,
                    **mqtt}
        self.config.write_text(yaml.safe_dump({"node_id": node_id, "name": "Kitchen",
                                               "source": source, "mqtt": settings,
                                               **(identity or {})}))
        self.args = [sys.executable, "-m", "tests.support.mqtt_node", str(self.config), labels,
                     version]
        self.stderr = (folder / "node.log").open("ab")
        self.out: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.proc = subprocess.Popen(self.args, cwd=REPO, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        threading.Thread(target=self._pump, daemon=True).start()
        self.pid = int(self.read_line().split()[1])
        self.log_path = folder / "node.log"

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.out.put(line)

    def read_line(self, timeout: float = 15.0) -> str:
        return self.out.get(timeout=timeout)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def settings(self) -> dict[str, Any]:
        self.send("settings")
        return json.loads(self.read_line())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.alive():
            self.send("quit")
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()
        return self.proc.returncode

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.stderr.close()


if __name__ == "__main__":
    main()
