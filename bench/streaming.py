"""Streaming recall vs false activations per hour of the bundled model, per threshold.

Runs the node's own detector (`edge-node detect --sweep T1,T2,...`: one pass of the model,
the detector's decision replayed at each threshold) over long recordings with known
events (`kws-train default` makes two: `stream.wav`, held-out voices of the trained engines, and
`stream-piper.wav`, an engine it never trained on; `kws-train stream` makes more) and scores
them against the event lists with `training.evaluation.metrics.streaming_scores`.

With `--candidate MODEL` the candidate is swept too, and compared with the bundled model at
equal false activations (its recall interpolated at each of the bundled model's operating
points): two models differ in how peaked their scores are, so one threshold for both compares
two different trade-offs. Clip tests at equal false accepts did not predict this comparison
(BENCHMARKS.md, "Distillation"), so a recipe change is judged here.

Run: `.venv/bin/python -m bench.streaming --recording runs/default/stream.wav
[--recording runs/default/stream-piper.wav] [--candidate MODEL.tflite]`
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge_node.detector import DetectorSettings
from edge_node.isolation import DEFAULT_ISOLATION_MODEL
from edge_node.model import DEFAULT_MODEL, read_manifest
from training.data.vocab import COMMANDS, near_misses, plain_words
from training.evaluation.benchmarks import BENCHMARKS, machine, write_section
from training.evaluation.metrics import recall_at, streaming_scores
from training.evaluation.node_eval import node_sweep
from training.evaluation.report import candidate_comparison_table, pct

Sweep = list[tuple[float, dict[str, Any]]]
"""(threshold, streaming scores) per threshold, in the order swept."""


def sweep(model: Path, recording: Path, thresholds: Sequence[float],
          isolation: Path | None = DEFAULT_ISOLATION_MODEL) -> Sweep:
    """The model's streaming scores on the recording at each threshold (with the node's
    isolation check of `isolation`; None: without it)."""
    meta = json.loads(recording.with_suffix(".json").read_text())
    rows = []
    for threshold, detections in node_sweep(model, recording, thresholds, isolation).items():
        scores = streaming_scores(detections, meta["events"], meta["duration_s"], COMMANDS)
        rows.append((threshold, scores))
        print(json.dumps({"model": str(model), "recording": recording.name,
                          "threshold": threshold,
                          **{k: v for k, v in scores.items() if k != "false_examples"}}))
    return rows


TARGET_RATES = (2.0, 5.0, 10.0, 20.0)
"""False activations per hour at which recall is read off a sweep (issue 3's target: 2)."""


def threshold_table(rows: Sweep) -> list[str]:
    lines = ["| threshold | recall | false activations per hour | of them during near-miss "
             "words / other words / sentences / commands | commands found least (recall) |",
             "|---|---|---|---|---|"]
    for threshold, s in rows:
        weakest = sorted(s["recall_per_command"].items(), key=lambda kv: kv[1])[:3]
        least = ", ".join(f"{c} {100 * r:.0f}%" for c, r in weakest)
        during = s["false_activations_during"]
        causes = " / ".join(str(during[k]) for k in ("near-miss word", "other word", "sentence",
                                                       "command"))
        lines.append(f"| {threshold:.2f} | {100 * s['recall']:.1f}% ({s['detected']}/"
                     f"{s['commands']}) | {s['false_activations_per_hour']:.0f} | {causes} | "
                     f"{least} |")
    rates = ", ".join(f"{pct(recall_at(rows, rate))} at {rate:g}" for rate in TARGET_RATES)
    lines += ["", f"Recall at a given number of false activations per hour (interpolated along "
                  f"the sweep; n/a: outside it): {rates}."]
    return lines


def describe(recording: Path) -> str:
    meta = json.loads(recording.with_suffix(".json").read_text())
    commands = [e for e in meta["events"] if e["label"] in COMMANDS]
    close = set(near_misses(COMMANDS))
    others = [e for e in meta["events"] if e["label"] not in COMMANDS]
    sentences = sum(e.get("kind") == "sentence" for e in others)
    similar = sum(e.get("kind") != "sentence" and plain_words(e["text"]) in close for e in others)
    engines = ", ".join(meta.get("engines", [])) or "?"
    return (f"`{recording.name}`: {meta['duration_s'] / 60:.3g} minutes, {len(commands)} "
            f"commands, {similar} near-miss words (words that sound like a command), "
            f"{len(others) - similar - sentences} other words and {sentences} sentences "
            f"({engines} voices)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recording", type=Path, action="append",
                        help="WAV with its .json events; repeatable "
                             "(default runs/default/stream.wav)")
    parser.add_argument("--candidate", type=Path, help="a model to compare with the bundled one")
    parser.add_argument("--without-isolation", action="store_true",
                        help="the candidate is the bundled model without the isolation check")
    parser.add_argument("--thresholds", default="0.4,0.5,0.55,0.6,0.65,0.7,0.8,0.9")
    parser.add_argument("--candidate-thresholds", default="0.3,0.4,0.5,0.6,0.7",
                        help="wide enough to reach the bundled model's rates")
    parser.add_argument("--benchmarks", type=Path, default=BENCHMARKS)
    args = parser.parse_args()
    recordings = args.recording or [Path("runs/default/stream.wav")]
    thresholds = [float(t) for t in args.thresholds.split(",")]
    manifest = read_manifest(DEFAULT_MODEL)
    d = DetectorSettings()
    setup = (f"Machine: {machine()}. `edge-node detect --sweep` (the node's detector at each "
             "threshold) with the bundled "
             f"`{DEFAULT_MODEL.name}` ({manifest.name} {manifest.version}, "
             f"{manifest.extra.get('architecture', '?')}; hop {d.hop_ms} ms, "
             f"{d.smoothing_windows}-window smoothing, refractory {d.refractory_s} s, gate "
             f"{d.gate_dbfs:.0f} dBFS), scored against each recording's event list (a hit is "
             "the right command between the word's start and 1.5 s after its end; anything "
             "else is a false activation). Noise changes along each recording at 5-30 dB SNR.")
    sweeps = {recording: sweep(DEFAULT_MODEL, recording, thresholds) for recording in recordings}
    if args.without_isolation:
        args.candidate = DEFAULT_MODEL
    if args.candidate is None:
        body = [setup + " `python -m bench.streaming " + " ".join(
            f"--recording {r}" for r in recordings) + f" --thresholds {args.thresholds}`."]
        for recording, rows in sweeps.items():
            body += ["", describe(recording) + ":", "", *threshold_table(rows)]
        write_section("streaming-thresholds",
                      "Streaming detection: threshold trade-off (bundled model)",
                      "\n".join(body), args.benchmarks)
        return
    candidate_thresholds = [float(t) for t in args.candidate_thresholds.split(",")]
    theirs = read_manifest(args.candidate)
    isolation = None if args.without_isolation else DEFAULT_ISOLATION_MODEL
    check = read_manifest(DEFAULT_ISOLATION_MODEL)
    body = [setup + f" Every detection passes the node's isolation check ({check.name} "
            f"{check.version}, threshold {check.threshold}) unless said otherwise. Candidate: "
            f"`{args.candidate}` ({theirs.name} {theirs.version}"
            + (", WITHOUT the isolation check" if args.without_isolation else "") + "). "
            "`python -m bench.streaming " + " ".join(f"--recording {r}" for r in recordings)
            + (" --without-isolation" if args.without_isolation else
               f" --candidate {args.candidate}") + "`: the candidate swept at "
            f"{args.candidate_thresholds}, its recall interpolated at the bundled model's "
            "false-activation rates."]
    for recording, rows in sweeps.items():
        other = sweep(args.candidate, recording, candidate_thresholds, isolation)
        body += ["", describe(recording) + ":", "", *candidate_comparison_table(rows, other), "",
                 "Candidate sweep:", "", *threshold_table(other)]
    text = "\n".join(body)
    print(text)
    if args.without_isolation:
        write_section("streaming-isolation", "Streaming detection on synthetic voices: the "
                      "bundled model with and without the isolation check", text,
                      args.benchmarks)
    else:
        write_section("streaming-candidate", "Streaming detection: a candidate model against "
                      "the bundled one at equal false activations", text, args.benchmarks)


if __name__ == "__main__":
    main()
