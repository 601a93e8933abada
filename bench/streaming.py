"""Streaming recall vs false activations per hour of the bundled model, per threshold.

Runs the node's own detector (`edge-node detect --threshold T`) over the long test recording
that `kws-train default` makes (voices never trained on; `kws-train stream` makes one) and
scores it against the recording's event list with `training.metrics.streaming_scores`.

Run: `.venv/bin/python -m bench.streaming --recording runs/default/stream.wav`
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge_node.detector import DetectorSettings
from edge_node.model import DEFAULT_MODEL, read_manifest
from training.benchmarks import machine, write_section
from training.metrics import streaming_scores
from training.node_eval import node_detections
from training.vocab import COMMANDS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recording", type=Path, default=Path("runs/default/stream.wav"))
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--thresholds", default="0.5,0.6,0.7,0.8,0.9")
    args = parser.parse_args()
    meta = json.loads(args.recording.with_suffix(".json").read_text())
    rows = []
    for threshold in (float(t) for t in args.thresholds.split(",")):
        detections = node_detections(args.model, args.recording, threshold)
        scores = streaming_scores(detections, meta["events"], meta["duration_s"], COMMANDS)
        rows.append((threshold, scores))
        print(json.dumps({"threshold": threshold,
                          **{k: v for k, v in scores.items() if k != "false_examples"}}))
    manifest = read_manifest(args.model)
    d = DetectorSettings()
    others = sum(e["label"] not in COMMANDS for e in meta["events"])
    body = [
        f"Machine: {machine()}. `python -m bench.streaming --recording {args.recording}`: "
        f"`edge-node detect --threshold T` with `{args.model.name}` ({manifest.name} "
        f"{manifest.version}, {manifest.extra.get('architecture', '?')}; hop {d.hop_ms} ms, "
        f"{d.smoothing_windows}-window smoothing, refractory {d.refractory_s} s, gate "
        f"{d.gate_dbfs:.0f} dBFS), scored against the recording's event list (a hit is the "
        "right command between the word's start and 1.5 s after its end; anything else is a "
        f"false activation). The {meta['duration_s'] / 60:.0f}-minute recording has "
        f"{rows[0][1]['commands']} commands and {others} other words/sentences from voices the "
        "model never trained on, over changing noise at 5-30 dB SNR.",
        "",
        "| threshold | recall | false activations per hour | commands found least (recall) |",
        "|---|---|---|---|",
    ]
    for threshold, s in rows:
        weakest = sorted(s["recall_per_command"].items(), key=lambda kv: kv[1])[:3]
        least = ", ".join(f"{c} {100 * r:.0f}%" for c, r in weakest)
        body.append(f"| {threshold:.2f} | {100 * s['recall']:.1f}% ({s['detected']}/"
                    f"{s['commands']}) | {s['false_activations_per_hour']:.0f} | {least} |")
    write_section("streaming-thresholds",
                  "Streaming detection: threshold trade-off (bundled model)", "\n".join(body))


if __name__ == "__main__":
    main()
