"""Recognising people in streaming: the bundled model against a candidate, on held-out people.

Both models are swept through the node's own detector (`edge-node detect --sweep`) over the
evaluation recordings `kws-train people-stream` makes (`kws-train default` keeps them in its
work directory): `people.wav` (held-out Speech Commands speakers saying commands and other
words, and held-out talk between them, over held-out real noise) and `talk.wav` (every
held-out talk file, whole). Recall counts the commands of both; false activations per hour
pool both recordings' time. The two models are compared at equal false activations (recall
interpolated along each sweep), and at each model's own threshold in force; the trade-off
curves are drawn in a PNG.

Run: `.venv/bin/python -m bench.people --work runs/default --candidate MODEL.tflite`
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edge_node.detector import DEFAULT_THRESHOLD
from edge_node.isolation import DEFAULT_ISOLATION_MODEL
from edge_node.model import DEFAULT_MODEL, read_manifest
from training.data.vocab import COMMANDS
from training.evaluation.benchmarks import BENCHMARKS, machine, write_section
from training.evaluation.calibrate import THRESHOLDS, sweep_recordings
from training.evaluation.metrics import proportion_interval, rate_interval, recall_at

RATES = (1.0, 2.0, 5.0, 10.0)
"""False activations per hour at which recall is read off each sweep."""


def at_rate(rows: list[dict[str, Any]], rate: float) -> float | None:
    return recall_at([(r["threshold"], r) for r in rows], rate)


def in_force(model: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The sweep row at the threshold the node would use with this model."""
    threshold = read_manifest(model).threshold or DEFAULT_THRESHOLD
    return min(rows, key=lambda r: abs(r["threshold"] - threshold))


def isolation_sentence(isolation: Path) -> str:
    """Which isolation check the sweeps ran with (`edge_node.isolation`)."""
    manifest = read_manifest(isolation)
    return (f"Every detection passes the node's isolation check ({manifest.name} "
            f"{manifest.version} at its threshold {manifest.threshold:.2f}, waiting "
            f"{manifest.extra['isolation']['after_ms']} ms for the pause after the word) unless "
            "the row says otherwise.")


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def plot(curves: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, rows in curves.items():
        ax.plot([r["false_activations_per_hour"] for r in rows],
                [100 * (r["recall"] or 0) for r in rows], marker="o", markersize=3, label=name)
    ax.axvline(2.0, color="grey", linestyle=":")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(left=0)
    ax.set_xlabel("false activations per hour (held-out people + held-out talk)")
    ax.set_ylabel("commands found (%)")
    ax.set_title("Streaming on people never heard: threshold swept 0.3-0.95")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/default"),
                        help="where people.wav and talk.wav (+ .json) are")
    parser.add_argument("--candidate", type=Path, action="append", default=[])
    parser.add_argument("--baseline", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--isolation-model", type=Path, default=DEFAULT_ISOLATION_MODEL,
                        help="the isolation check every model runs with")
    parser.add_argument("--without-isolation", action="store_true",
                        help="also sweep each model without the isolation check")
    parser.add_argument("--plot", type=Path, default=Path("docs/people-tradeoff.png"))
    parser.add_argument("--benchmarks", type=Path, default=BENCHMARKS)
    parser.add_argument("--section", default="people-streaming",
                        help="BENCHMARKS.md section to write (another one keeps the main "
                             "comparison, e.g. for a rebuild of the bundled model)")
    parser.add_argument("--title", default="Recognising people: streaming on held-out people "
                                           "and talk")
    parser.add_argument("--note", default="", help="a paragraph that opens the section")
    args = parser.parse_args()
    recordings = [args.work / "people.wav", args.work / "talk.wav"]
    metas = [json.loads(r.with_suffix(".json").read_text()) for r in recordings]
    checks: list[Path | None] = [args.isolation_model, *([None] * args.without_isolation)]
    models = [(model, check) for model in (args.baseline, *args.candidate) for check in checks]
    curves, lines = {}, []
    header = ("| model | threshold in force | recall | false activations per hour | "
              "on talk alone | " + " | ".join(f"recall at {r:g}/h" for r in RATES) + " |")
    lines += [header, "|---" * (5 + len(RATES)) + "|"]
    for model, check in models:
        manifest = read_manifest(model)
        name = f"{manifest.name} {manifest.version}"
        if check is None:
            name += ", no isolation check"
        if name in curves:  # a rebuild of the same model: tell them apart by file
            name = f"{name} ({model})"
        rows = sweep_recordings(model, recordings, COMMANDS, THRESHOLDS, check)
        for row in rows:
            print(json.dumps({"model": name, **row}))
        curves[name] = rows
        own = in_force(model, rows)
        talk = own["per_recording"][1]
        recall_low, recall_high = proportion_interval(own["detected"], own["commands"])
        talk_low, talk_high = rate_interval(talk["false_activations"], talk["hours"])
        lines.append(f"| {name} | {own['threshold']:.3f} | {pct(own['recall'])} "
                     f"({100 * recall_low:.0f}-{100 * recall_high:.0f}) | "
                     f"{own['false_activations_per_hour']:.1f} | "
                     f"{talk['false_activations'] / talk['hours']:.1f} "
                     f"({talk['false_activations']}; {talk_low:.1f}-{talk_high:.1f}) | "
                     + " | ".join(pct(at_rate(rows, r)) for r in RATES) + " |")
    plot(curves, args.plot)
    talk_min = metas[1]["duration_s"] / 60
    commands = sum(e["label"] in COMMANDS for e in metas[0]["events"])
    speakers = len({e["voice"] for m in metas for e in m["events"]})
    body = "\n".join([
        *([args.note, ""] if args.note else []),
        f"Machine: {machine()}. `python -m bench.people --work {args.work} "
        + (f"--baseline {args.baseline} " if args.baseline != DEFAULT_MODEL else "")
        + " ".join(f"--candidate {c}" for c in args.candidate)
        + (" --without-isolation" if args.without_isolation else "") + "`. "
        + isolation_sentence(args.isolation_model) + " Recordings "
        f"(`kws-train people-stream`): `people.wav` ({metas[0]['duration_s'] / 60:.0f} min, "
        f"{commands} commands and "
        f"{sum(e['label'] not in COMMANDS for e in metas[0]['events'])} other words and talk "
        f"excerpts by held-out Speech Commands speakers and held-out talkers) and `talk.wav` "
        f"({talk_min:.0f} min of held-out continuous talk), {speakers} speakers in all, over "
        "held-out real household noise at 5-30 dB SNR; no model here trained on any of them. "
        "Recall over the commands; false activations per hour over both recordings' "
        f"{sum(m['duration_s'] for m in metas) / 60:.0f} minutes (one false activation is "
        f"{3600 / sum(m['duration_s'] for m in metas):.1f} per hour); on talk alone, over "
        f"`talk.wav`'s {talk_min:.0f} minutes (in brackets their count and the rate's exact 95% "
        f"interval; one is {60 / talk_min:.1f} per hour). The recall at the threshold in force "
        "has its exact 95% interval in brackets. Sweep "
        f"{THRESHOLDS[0]}-{THRESHOLDS[-1]}; recall at a rate is interpolated along it "
        "(n/a: outside it).", "", *lines, "",
        f"![trade-off]({args.plot.as_posix()})"])
    print(body)
    write_section(args.section, args.title, body, args.benchmarks)


if __name__ == "__main__":
    main()
