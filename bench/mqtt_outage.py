"""Broker outages while the real node streams: is every spoken command delivered once, in order?

The real node (`python -m edge_node run --source wav:REC`, real-time pacing) publishes to a
private Mosquitto with persistence (like Home Assistant's broker, so the subscriber's session
and its queued QoS 1 messages survive); the broker is stopped and restarted several times
while commands are being spoken; a persistent subscriber (clean_session False, QoS 1) collects
`kws/bench/detection`. Counted: commands spoken, detections the node sent (its stdout),
messages received, duplicates (same seq twice), lost (sent but never received), outages.

Run: `.venv/bin/python -m bench.mqtt_outage [--words 12] [--outages 3]`
"""

from __future__ import annotations

import argparse
import json
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.mqtt_common import RealNode, TimedSubscriber, Word, build_recording, dedup
from tests.mqtt_broker import Broker
from training.evaluation.benchmarks import machine, write_section

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=12)
    parser.add_argument("--outages", type=int, default=3)
    parser.add_argument("--down", type=float, default=1.5, help="seconds the broker is down")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        r = run_outages(Path(tmp), args.words, args.outages, args.down)
    spoken = [w.label for w in r.spoken]
    heard = [b["command"] for b in r.unique]
    seqs = [b["seq"] for b in r.unique]
    numbers = {"spoken": len(spoken), "sent": len(r.sent), "received": len(r.received),
               "unique": len(r.unique), "duplicates": r.duplicates, "lost": r.lost,
               "outages": r.outages, "node_disconnects": r.disconnects,
               "in_order": seqs == sorted(set(seqs)), "heard_as_spoken": heard == spoken,
               "exit_code": r.exit_code}
    print(json.dumps(numbers))
    body = [
        f"Machine: {machine()}. `python -m bench.mqtt_outage --words {args.words} --outages "
        f"{args.outages} --down {args.down}`: the real node on a real-time recording of "
        f"{len(spoken)} flite commands ({r.spoken[-1].end_s:.0f} s) publishing to a Mosquitto "
        "with persistence (autosave on every change) that is killed (SIGKILL) and restarted "
        f"{r.outages} times, "
        f"{args.down} s down each time, while commands are spoken; a persistent QoS 1 "
        "subscriber (clean_session False) collects the detections.",
        "",
        "| commands spoken | detections sent | received | duplicates | lost | outages | "
        "node disconnects | in order (seq) | commands as spoken |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {len(spoken)} | {len(r.sent)} | {len(r.received)} | {r.duplicates} | {r.lost} | "
        f"{r.outages} | {r.disconnects} | {'yes' if numbers['in_order'] else 'no'} | "
        f"{'yes' if numbers['heard_as_spoken'] else 'no: ' + ' '.join(heard)} |",
    ]
    write_section("mqtt-outage", "MQTT delivery across broker outages (real node)",
                  "\n".join(body))


if __name__ == "__main__":
    main()
