"""A real `edge-node run --source stdin` for OTA tests: audio is written to its stdin on
demand, detections come back on stdout with the model version that made them."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from edge_node.audio.wav import read_wav_mono16k
from edge_node.ota.install import REFERENCE_WAV
from tests.support.mqtt_broker import Broker, Subscriber
from tests.support.node_process import NodeProcess

AUDIO = (read_wav_mono16k(REFERENCE_WAV) * 32767).astype("<i2").tobytes()
"""The bundled recording as the stdin source reads it (16 kHz mono int16)."""


def node_config(folder: Path, node_id: str, broker: Broker, public_key: Path | None,
                group: str = "", **ota: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = {"node_id": node_id, "group": group, "source": "stdin",
              "mqtt": {"host": "127.0.0.1", "port": broker.port,
                       "state_dir": str(folder / "state"), "keepalive": 5,
                       "reconnect_max_s": 1},
              "ota": {"chunk_timeout_s": 0.5, **ota}}
    if public_key is not None:
        config["ota"]["public_key"] = str(public_key)
    path = folder / "node.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class OtaNode:
    """One node process; `restart()` starts it again on the same config and state."""

    def __init__(self, folder: Path, config: Path, fault: str = "") -> None:
        self.folder, self.config = folder, config
        self.runs = 0
        self.proc = self._start(fault)

    def _start(self, fault: str) -> NodeProcess:
        self.runs += 1
        run = self.folder / f"run{self.runs}"
        run.mkdir()
        env = {"KWS_OTA_FAULT": fault} if fault else {"KWS_OTA_FAULT": ""}
        return NodeProcess(run, "--config", str(self.config), env=env, stdin=subprocess.PIPE)

    def restart(self, fault: str = "") -> None:
        self.proc.close()
        self.proc = self._start(fault)

    def listen(self) -> list[dict[str, Any]]:
        """Play the reference recording; the detections it caused."""
        before = len(self.proc.stdout)
        stdin = self.proc.proc.stdin
        assert stdin is not None
        stdin.buffer.write(AUDIO)
        stdin.buffer.flush()
        self.proc.wait_for(lambda: len(self.proc.stdout) >= before + 5)
        time.sleep(0.3)
        return [line for _, line in self.proc.stdout[before:]]

    def versions_heard(self) -> set[str]:
        return {d["model_version"] for d in self.listen()}

    def killed(self, timeout: float = 60.0) -> int:
        """Wait for the node to die (fault injection); its exit code, its output all read."""
        code = self.proc.proc.wait(timeout)
        for thread in self.proc._threads:
            thread.join(2.0)
        return code

    def close(self) -> None:
        self.proc.close()


def model_status(sub: Subscriber, node_id: str, predicate: Callable[[dict[str, Any]], Any],
                 what: str = "", timeout: float = 30.0) -> dict[str, Any]:
    """The node's latest retained model status once `predicate` holds for it: an install goes
    through several states, and only the newest one says where the node is now."""
    topic = f"kws/{node_id}/model/status"
    return sub.wait_for(lambda ms: (s := [m.json() for m in ms if m.topic == topic and
                                          m.payload][-1:]) and predicate(s[0]) and s[0],
                        timeout, what or topic)
