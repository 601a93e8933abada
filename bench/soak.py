"""Soak: an hour of spoken commands through the real node while everything around it fails.

The real node (`python -m edge_node run --source stdin`) hears a long recording of flite
commands, fed faster than real time, and publishes to a Mosquitto with persistence. A
persistent QoS 1 subscriber (what Home Assistant's broker session would keep) collects
`kws/soak/detection`. While the audio plays, faults take turns: the broker is killed (SIGKILL)
and restarted, the disk holding the detection queue (a small tmpfs) is filled and freed, the
node gets SIGHUPs (a good file, then a non-UTF-8 one it must refuse), and floods of hostile
payloads arrive (Home Assistant's birth message, garbage on the command topics).

Counted: commands spoken, detections the node made (its stdout), copies received, detections
delivered after dedupe by (node, seq), detections still duplicated after it, lost (made but
never delivered), seq collisions (two different detections under one seq).

Run: `.venv/bin/python -m bench.soak [--minutes 60] [--speed 8]` (root, for the tmpfs).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from edge_node.audio.wav import read_wav_mono16k
from edge_node.model import DEFAULT_MODEL
from tests.support.mqtt_broker import Broker, Subscriber
from tests.support.real_node import REPO, TimedSubscriber, Word, build_recording
from tests.support.small_fs import fill, small_fs
from training.evaluation.benchmarks import machine, write_section

NODE = "soak"
TOPIC = f"kws/{NODE}/detection"
WORD_S = 3.0
"""About one command (plus its gap) per this many seconds of recording."""
FAULTS = ("broker", "disk", "sighup", "flood")
SEEN = {"disconnects": "MQTT: disconnected", "queue_faults": "detection queue cannot be written",
        "queue_recovered": "writable again", "reloads_refused": "config reload refused",
        "reloads_applied": "config reloaded", "reannounces": "Home Assistant (re)started"}
"""What the node's log shows of the faults (proof they reached it)."""


@dataclass
class SoakRun:
    """What one soak run spoke, made, delivered, and which faults it survived."""

    spoken: list[Word]
    made: list[dict[str, Any]]
    received: list[dict[str, Any]]
    faults: dict[str, int]
    audio_s: float
    wall_s: float
    exit_code: int
    node_log: str
    unique: dict[tuple[str, int], dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.unique = {}
        for body in self.received:
            self.unique.setdefault((body["node_id"], int(body["seq"])), body)

    @property
    def repeats(self) -> int:
        """Copies received again (QoS 1 after a reconnect); dedupe by (node, seq) drops them."""
        return len(self.received) - len(self.unique)

    @property
    def duplicated(self) -> int:
        """Detections still there twice after dedupe (sent again under a new seq)."""
        return len(self.unique) - len({(b["timestamp"], b["command"])
                                       for b in self.unique.values()})

    @property
    def lost(self) -> int:
        """Detections the node made that no subscriber got (matched by their timestamp)."""
        got = {(b["timestamp"], b["command"]) for b in self.unique.values()}
        return sum(1 for m in self.made if (m["timestamp"], m["label"]) not in got)

    @property
    def seq_collisions(self) -> int:
        """Different detections sent under one (node, seq): dedupe would drop one of them."""
        bodies: dict[tuple[str, int], set[tuple[float, str]]] = {}
        for b in self.received:
            bodies.setdefault((b["node_id"], int(b["seq"])), set()).add(
                (b["timestamp"], b["command"]))
        return sum(len(v) - 1 for v in bodies.values())


class Feeder:
    """Writes the recording to the node's stdin, `speed` times faster than real time."""

    def __init__(self, proc: subprocess.Popen[bytes], pcm: bytes, speed: float) -> None:
        self.proc, self.pcm, self.speed = proc, pcm, speed
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        assert self.proc.stdin is not None
        step = 3200 * 10  # 1 s of 16 kHz int16
        began = time.monotonic()
        for k, start in enumerate(range(0, len(self.pcm), step)):
            time.sleep(max(0.0, began + k / self.speed - time.monotonic()))
            try:
                self.proc.stdin.write(self.pcm[start:start + step])
                self.proc.stdin.flush()
            except BrokenPipeError:
                break
        self.done.set()


def node_config(folder: Path, broker: Broker, queue_dir: Path, extra: str = "") -> Path:
    config = folder / "node.yaml"
    config.write_text(yaml.safe_dump({
        "node_id": NODE, "source": "stdin", "model": str(DEFAULT_MODEL),
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "state_dir": str(folder / "state"),
                 "queue_dir": str(queue_dir), "keepalive": 5, "reconnect_max_s": 1},
    }) + extra)
    return config


def flood(broker: Broker, count: int) -> None:
    """Home Assistant's birth message and garbage on every command topic, as fast as it goes."""
    client = Subscriber(broker, "nothing/#")
    junk = [b"", b"nan", b"inf", b"\xff\xfe", b"9" * 70, b"-1", b"2", b'{"x": 1}', b"PRESSX"]
    topics = [f"kws/{NODE}/{k}/set" for k in ("threshold", "refractory", "listening",
                                                "restart")]
    for i in range(count):
        client.client.publish("homeassistant/status", "online", qos=0)
        client.client.publish(topics[i % len(topics)], junk[i % len(junk)], qos=0)
    client.publish("homeassistant/status", "online")
    client.close()


def run_soak(folder: Path, minutes: float, speed: float) -> SoakRun:
    count = max(12, int(minutes * 60 / WORD_S))
    recording, spoken = build_recording(folder / "audio", count)
    audio = read_wav_mono16k(recording)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    broker = Broker(folder / "broker", persistence=True).start()
    sub = TimedSubscriber(broker, TOPIC, client_id="ha", persistent=True)
    faults = dict.fromkeys(FAULTS, 0)
    with small_fs(folder / "queue", 256) as queue_dir:
        config = node_config(folder, broker, queue_dir)
        log_path = folder / "node.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "edge_node", "run", "--config", str(config),
                 "--display", "none"], cwd=REPO, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=log)
            made: list[dict[str, Any]] = []
            reader = threading.Thread(
                target=lambda: made.extend(json.loads(line) for line in proc.stdout or ()),
                daemon=True)
            reader.start()
            began = time.monotonic()
            feeder = Feeder(proc, pcm, speed)
            filler: Path | None = None
            turn = 0
            while not feeder.done.wait(4.0):
                kind = FAULTS[turn % len(FAULTS)]
                turn += 1
                if filler is not None:
                    filler.unlink()
                    filler = None
                faults[kind] += 1
                if kind == "broker":
                    broker.restart(down_s=2.0, sig=signal.SIGKILL)
                elif kind == "disk":
                    filler = fill(queue_dir)
                elif kind == "sighup":
                    good = faults["sighup"] % 2
                    if good:
                        config.write_text(config.read_text() + "log_level: INFO\n")
                    else:
                        config.write_bytes(config.read_bytes() + b"# \xff\xfe\n")
                    proc.send_signal(signal.SIGHUP)
                    time.sleep(0.5)
                    node_config(folder, broker, queue_dir)
                else:
                    flood(broker, 1000)
            if filler is not None:
                filler.unlink()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                time.sleep(0.5)
                run = SoakRun(spoken, list(made), [b for _, b in sub.timed(TOPIC)], faults, 0,
                              0, 0, "")
                if made and run.lost == 0:
                    break
            assert proc.stdin is not None
            proc.stdin.close()
            code = proc.wait(60)
            reader.join(10)
            wall = time.monotonic() - began
    received = [b for _, b in sub.timed(TOPIC)]
    sub.close()
    broker.stop()
    return SoakRun(spoken, made, received, faults, audio.size / 16000, wall, code,
                   log_path.read_text(errors="replace"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="minutes of audio")
    parser.add_argument("--speed", type=float, default=8.0, help="times faster than real time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        r = run_soak(Path(tmp), args.minutes, args.speed)
    numbers = {"audio_min": round(r.audio_s / 60, 1), "wall_min": round(r.wall_s / 60, 1),
               "spoken": len(r.spoken), "made": len(r.made), "received": len(r.received),
               "delivered": len(r.unique), "repeats": r.repeats, "duplicated": r.duplicated,
               "lost": r.lost,
               "seq_collisions": r.seq_collisions, "faults": r.faults,
               "tracebacks": r.node_log.count("Traceback"), "exit_code": r.exit_code,
               "node_saw": {name: r.node_log.count(text) for name, text in SEEN.items()}}
    print(json.dumps(numbers))
    f = r.faults
    body = [
        f"Machine: {machine()}. `python -m bench.soak --minutes {args.minutes:g} --speed "
        f"{args.speed:g}`: the real node hears {r.audio_s / 60:.0f} min of flite commands "
        f"(one about every {WORD_S:g} s) on stdin, fed {args.speed:g}x faster than real time "
        f"({r.wall_s / 60:.1f} min), publishing to a Mosquitto with persistence; a persistent "
        "QoS 1 subscriber collects the detections. Faults took turns every 4 s: broker killed "
        f"(SIGKILL) and restarted after 2 s ({f['broker']}x), the queue's tmpfs filled until "
        f"the next turn ({f['disk']}x), SIGHUP with a good and with a non-UTF-8 node.yaml "
        f"({f['sighup']}x), 1000-message floods of homeassistant/status and garbage on every "
        f"command topic ({f['flood']}x).",
        "",
        "| commands spoken | detections made | received | repeats (dropped by dedupe) | "
        "delivered (unique by node, seq) | duplicated after dedupe | lost | seq collisions | "
        "tracebacks | exit code |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {len(r.spoken)} | {len(r.made)} | {len(r.received)} | {r.repeats} | "
        f"{len(r.unique)} | {r.duplicated} | {r.lost} | {r.seq_collisions} | "
        f"{numbers['tracebacks']} | {r.exit_code} |",
        "",
        "The node's log saw: " + ", ".join(f"{v} {k.replace('_', ' ')}"
                                            for k, v in numbers["node_saw"].items()) + ".",
        "",
        f"Spoken vs made is the model's recall on these voices at {args.speed:g}x pace (the "
        "detector, not delivery); made vs delivered is what the faults could cost.",
    ]
    write_section("soak", "Soak: an hour of commands through broker, disk, SIGHUP and flood "
                  "faults", "\n".join(body))


if __name__ == "__main__":
    main()
