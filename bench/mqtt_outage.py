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
import tempfile
from pathlib import Path

from tests.support.broker_outages import run_outages
from training.evaluation.benchmarks import machine, write_section


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
