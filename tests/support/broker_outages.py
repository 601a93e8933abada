"""Broker outages while the real node streams: the run that bench.mqtt_outage reports and
tests/test_mqtt_outage.py asserts on (every spoken command delivered once, in order).

The real node publishes to a private Mosquitto with persistence (like Home Assistant's broker,
so the subscriber's session and its queued QoS 1 messages survive); the broker is stopped and
restarted several times while commands are being spoken; a persistent subscriber
(clean_session False, QoS 1) collects the detections.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.mqtt_broker import Broker
from tests.support.real_node import RealNode, TimedSubscriber, Word, build_recording, dedup

TOPIC = "kws/bench/detection"


@dataclass
class OutageRun:
    """What one run spoke, sent and received."""

    spoken: list[Word]
    sent: list[dict[str, Any]]
    received: list[dict[str, Any]]
    outages: int
    down_s: float
    exit_code: int
    node_alive_after_outages: bool
    node_log: str
    unique: list[dict[str, Any]] = field(init=False)
    duplicates: int = field(init=False)

    def __post_init__(self) -> None:
        self.unique, self.duplicates = dedup(self.received)

    @property
    def disconnects(self) -> int:
        """How many times the node logged losing its broker connection."""
        return self.node_log.count("MQTT: disconnected")

    @property
    def lost(self) -> int:
        """Detections the node sent that never arrived."""
        got = {b["timestamp"] for b in self.unique}
        return sum(1 for s in self.sent if s["timestamp"] not in got)


def run_outages(folder: Path, count: int = 12, outages: int = 3, down_s: float = 1.5,
                sig: int = signal.SIGKILL) -> OutageRun:
    """Stream a `count`-word recording through the node while restarting the broker."""
    recording, spoken = build_recording(folder / "audio", count)
    broker = Broker(folder / "broker", persistence=True).start()
    sub = TimedSubscriber(broker, TOPIC, client_id="ha", persistent=True)
    node = RealNode(folder / "node", recording, broker)
    alive = True
    try:
        began = time.monotonic()
        # Spread the outages over the speech, the last one ending well before the end.
        span = spoken[-1].end_s - 4.0
        for k in range(outages):
            due = began + span * (k + 1) / (outages + 1)
            time.sleep(max(0.0, due - time.monotonic()))
            broker.restart(down_s=down_s, sig=sig)
        alive = node.alive()
        code = node.wait(spoken[-1].end_s + 120)
        sub.wait_for(lambda _: len(dedup([b for _, b in sub.timed(TOPIC)])[0])
                     >= len(node.lines), 30, "every sent detection")
    except AssertionError:
        code = node.proc.returncode if node.proc.returncode is not None else -1
    finally:
        received = [b for _, b in sub.timed(TOPIC)]
        sub.close()
        broker.stop()
    return OutageRun(spoken, node.lines, received, outages, down_s, code, alive, node.log())
