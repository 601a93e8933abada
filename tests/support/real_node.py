"""The real node (`python -m edge_node run`) streaming a recording of spoken commands at known
times to a broker, and a subscriber that stamps arrival times: the MQTT benches' setup, and
the outage test's."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import yaml

from edge_node.model import DEFAULT_MODEL
from tests.support.audio_signals import RATE, noise, synthesise, write_wav
from tests.support.mqtt_broker import Broker, Subscriber

REPO = Path(__file__).resolve().parents[2]
SPOKEN = (("stop", "slt"), ("left", "rms"), ("yes", "awb"), ("down", "slt"), ("right", "rms"),
          ("go", "rms"), ("no", "rms"), ("up", "awb"), ("right", "awb"), ("stop", "rms"),
          ("yes", "rms"), ("left", "awb"))
"""(word, flite voice) pairs the bundled model (kws-default 2.0.0) detected at threshold 0.62,
with no wrong label, both times each of the 24 pairs was streamed over this noise (20 of 24
did; go/slt, down/rms, down/awb and up/rms are left out). kws-default 3.0.0 detects all of
them at `SYNTHETIC_THRESHOLD`."""
SYNTHETIC_THRESHOLD = 0.5
"""The detector threshold of these benches' node. They measure delivery, not recognition, and
speak with flite voices, which the bundled models calibrated on people (3.0.0 and 3.2.0: 0.70,
3.1.0: 0.675 in their manifests) score lower than people: at 0.70 3.0.0 missed "up" and one
voice's "stop"; at 0.5 neither it nor 3.2.0 missed any of 24."""


@dataclass(frozen=True)
class Word:
    """A command in the recording: label and its start and end in stream seconds."""

    label: str
    start_s: float
    end_s: float


def build_recording(folder: Path, count: int, gap_s: float = 2.5,
                    spoken: tuple[tuple[str, str], ...] = SPOKEN) -> tuple[Path, list[Word]]:
    """`count` flite commands (cycling through `spoken`) over low noise, with known times."""
    folder.mkdir(parents=True, exist_ok=True)
    cache: dict[tuple[str, str], np.ndarray] = {}
    parts, words, t = [noise(1.0, -55, 1)], [], 1.0
    for i in range(count):
        key = spoken[i % len(spoken)]
        if key not in cache:
            cache[key] = synthesise(key[0], "flite", key[1], folder / f"{key[1]}-{key[0]}.wav")
        clip = cache[key] * 0.5
        words.append(Word(key[0], t, t + clip.size / RATE))
        parts += [clip, noise(gap_s, -55, 10 + i)]
        t += clip.size / RATE + gap_s
    audio = np.concatenate(parts)
    audio += noise(audio.size / RATE, -60, 99)
    return write_wav(folder / "commands.wav", audio), words


class TimedSubscriber(Subscriber):
    """A Subscriber that also records the wall-clock arrival time of every message."""

    def __init__(self, broker: Broker, *topics: str, **kwargs: Any) -> None:
        self.arrivals: list[float] = []
        super().__init__(broker, *topics, **kwargs)

    def _message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        arrived = time.time()
        with self.cond:
            self.arrivals.append(arrived)
        super()._message(client, userdata, msg)

    def timed(self, topic: str) -> list[tuple[float, dict[str, Any]]]:
        """(arrival wall time, JSON body) of each message on `topic`, in arrival order."""
        with self.cond:
            pairs = list(zip(self.arrivals, self.messages, strict=True))
        return [(t, m.json()) for t, m in pairs if m.topic == topic]


def dedup(bodies: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Detections deduplicated by seq in order of first arrival, and the duplicate count."""
    seen: dict[int, dict[str, Any]] = {}
    for body in bodies:
        seen.setdefault(int(body["seq"]), body)
    return list(seen.values()), len(bodies) - len(seen)


class RealNode:
    """`python -m edge_node run --source wav:FILE` (real-time pacing) publishing to `broker`."""

    def __init__(self, folder: Path, recording: Path, broker: Broker, node_id: str = "bench",
                 model: Path = DEFAULT_MODEL) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "node.yaml"
        config.write_text(yaml.safe_dump({"mqtt": {"state_dir": str(folder / "state"),
                                                   "keepalive": 5, "reconnect_max_s": 1},
                                          "detector": {"threshold": SYNTHETIC_THRESHOLD}}))
        self.log_path = folder / "node.log"
        self._log = self.log_path.open("wb")
        self.lines: list[dict[str, Any]] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_node", "run", "--config", str(config), "--source",
             f"wav:{recording}", "--model", str(model), "--node-id", node_id, "--mqtt-host",
             "127.0.0.1", "--mqtt-port", str(broker.port), "--display", "none"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=self._log, text=True)
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def alive(self) -> bool:
        """True while the node process runs."""
        return self.proc.poll() is None

    def wait(self, timeout: float) -> int:
        """Wait for the node to finish its recording; its exit code."""
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._reader.join(5)
            self._log.close()
        return code

    def log(self) -> str:
        """The node's stderr so far."""
        return self.log_path.read_text(errors="replace")


def match(words: list[Word], labels_times: list[tuple[str, float]],
          late_s: float = 1.5) -> dict[int, int]:
    """Word index -> detection index: same label, fired between the word's start and
    `late_s` after its end; each detection used once, in order."""
    pairs: dict[int, int] = {}
    used: set[int] = set()
    for wi, word in enumerate(words):
        for di, (label, t) in enumerate(labels_times):
            if di not in used and label == word.label and word.start_s <= t <= word.end_s + late_s:
                pairs[wi] = di
                used.add(di)
                break
    return pairs
