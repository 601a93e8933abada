"""Recognising people in streaming, from speaker-fold models: recipes compared without a build.

A `kws-train train --folds 5` run leaves five models, each trained without one fold of the
recorded speakers. Each is swept through the node's own detector over the people recordings
(`kws-train people-stream`: `people.wav` says every evaluation speaker's clips, `talk.wav` is
held-out talk) and scored only on its own fold's speakers
(`training.experiments.folds.fold_streaming`). Pooled over the five models, recall and false
activations per hour give each recipe a streaming trade-off from five models instead of one
build (seeds move one build's figure at 2 per hour by +/-2 points), and every run of the folds
already made them. Recipes are compared at equal false activations, fold by fold and pooled.

Run: `.venv/bin/python -m bench.people_folds --work runs/long --run 'NAME=runs/folds-x' ...`
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.people import RATES, at_rate, isolation_sentence, pct, plot
from edge_node.isolation import DEFAULT_ISOLATION_MODEL
from training.data.vocab import COMMANDS
from training.evaluation.benchmarks import BENCHMARKS, machine, write_section
from training.evaluation.calibrate import THRESHOLDS, pool_scores
from training.experiments.folds import fold_provenance, fold_streaming
from training.experiments.provenance import mismatches


def pooled(per_fold: dict[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One trade-off over all fold models: their commands and their hours summed."""
    folds = sorted(per_fold)
    return [pool_scores(row["threshold"], [
        {"detected": r["detected"], "commands": r["commands"],
         "false_activations": r["false_activations"], "duration_s": r["hours"] * 3600.0}
        for r in (per_fold[k][i] for k in folds)]) for i, row in enumerate(per_fold[folds[0]])]


def named_run(text: str) -> tuple[str, Path]:
    name, sep, path = text.rpartition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--run takes NAME=DIR, not {text!r}")
    return name, Path(path)


ISOLATION_CHOICES: dict[str, list[Path | None]] = {
    "with": [DEFAULT_ISOLATION_MODEL], "without": [None], "both": [None, DEFAULT_ISOLATION_MODEL]}
"""`--isolation`: the isolation checks each run is swept with (None: without the check)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/default"),
                        help="where people.wav and talk.wav (+ .json) are")
    parser.add_argument("--run", type=named_run, action="append", required=True,
                        help="NAME=DIR of a --folds run; the first is the reference")
    parser.add_argument("--folds", type=int, default=None,
                        help="folds the runs made (default: each run's folds.json)")
    parser.add_argument("--rate", type=float, default=2.0,
                        help="false activations per hour of the fold-by-fold comparison")
    parser.add_argument("--isolation", choices=ISOLATION_CHOICES, default="with",
                        help="sweep with the node's isolation check, without it (as before it "
                             "had one), or both ways (each run twice, the first without)")
    parser.add_argument("--plot", type=Path, default=Path("docs/people-folds-tradeoff.png"))
    parser.add_argument("--benchmarks", type=Path, default=BENCHMARKS)
    parser.add_argument("--section", default="people-fold-streaming")
    parser.add_argument("--title", default="Recognising people: streaming from the speaker-fold "
                                           "models")
    parser.add_argument("--note", default="", help="a paragraph that opens the section")
    args = parser.parse_args()
    recordings = [args.work / "people.wav", args.work / "talk.wav"]
    metas = [json.loads(r.with_suffix(".json").read_text()) for r in recordings]
    checks = ISOLATION_CHOICES[args.isolation]
    entries = [(name if len(checks) == 1 else
                f"{name}, {'no isolation check' if check is None else 'isolation check'}",
                run, check) for name, run in args.run for check in checks]
    per_run = {label: fold_streaming(run, recordings, COMMANDS, THRESHOLDS, args.folds, check)
               for label, run, check in entries}
    folds = sorted(set.intersection(*(set(f) for f in per_run.values())))
    if not folds:
        raise SystemExit("the runs have no fold in common")
    reference = entries[0][0]
    at = f"{args.rate:g}/h"
    lines = ["| recipe | " + " | ".join(f"recall at {r:g}/h" for r in RATES)
             + f" | at {at}, fold by fold | paired with the first at {at}, points | "
             "commands, hours (all fold models) |", "|---" * (len(RATES) + 4) + "|"]
    curves = {}
    for name, per_fold in per_run.items():
        mine = {k: per_fold[k] for k in folds}
        rows = pooled(mine)
        curves[name] = rows
        for row in rows:
            print(json.dumps({"recipe": name, **row}))
        fold_at = [at_rate(mine[k], args.rate) for k in folds]
        ref_at = [at_rate(per_run[reference][k], args.rate) for k in folds]
        paired = "" if name == reference else ", ".join(
            "n/a" if a is None or b is None else f"{100 * (a - b):+.1f}"
            for a, b in zip(fold_at, ref_at, strict=True))
        lines.append(f"| {name} | " + " | ".join(pct(at_rate(rows, r)) for r in RATES)
                     + f" | {', '.join(pct(v) for v in fold_at)} | {paired} | "
                     f"{rows[0]['commands']:,}, {rows[0]['hours']:.1f} h |")
    caveats = mismatches({name: fold_provenance(run) for name, run in args.run}, folds)
    plot(curves, args.plot)
    minutes = sum(m["duration_s"] for m in metas) / 60
    body = "\n".join([
        *([args.note, ""] if args.note else []),
        f"Machine: {machine()}. `python -m bench.people_folds --work {args.work} "
        + " ".join(f"--run '{name}={run}'" for name, run in args.run)
        + f" --isolation {args.isolation}`. "
        + ("Without the isolation check. " if args.isolation == "without" else
           isolation_sentence(DEFAULT_ISOLATION_MODEL) + " ")
        + "Recordings (`kws-train people-stream`): `people.wav` and `talk.wav` "
        f"({minutes:.0f} minutes, every evaluation speaker's command clips once, over held-out "
        "real noise). Each fold model (folds "
        f"{', '.join(map(str, folds))}) is swept over both and scored only on its own fold's "
        "speakers: the other speakers' words, which it trained on, count in neither recall "
        "nor false activations, and their time leaves its hours. Pooled: recall over all fold "
        "models' commands, false activations per hour over all their hours. Sweep "
        f"{THRESHOLDS[0]}-{THRESHOLDS[-1]}; recall at a rate is interpolated along it "
        "(n/a: outside it).", "", *lines, *([""] + caveats if caveats else []), "",
        f"![trade-off]({args.plot.as_posix()})"])
    print(body)
    write_section(args.section, args.title, body, args.benchmarks)


if __name__ == "__main__":
    main()
