"""Speaker-held-out folds over recorded people: how a recipe does on people it never heard.

Every recorded speaker falls in one of K folds by a fixed hash of their id, so a speaker's
clips are all on one side of every split and each fold's model is scored only on people it
never trained on. Synthetic voices and other sources train in every fold; their own
validation voices still stop training early. The figures (per word, other words and silence
taken for a command) are reported per fold and as mean and spread over the folds, beside the
bundled model's on the same clips.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edge_node.isolation import DEFAULT_ISOLATION_MODEL
from edge_node.model import read_manifest
from training.data.dataset import PEOPLE_ENGINE, Clip
from training.data.vocab import SILENCE_LABEL
from training.experiments.pipeline import (
    PipelineSettings,
    load_test_probabilities,
    prepare,
    run_experiment,
    voice_masks,
)
from training.experiments.provenance import mismatches

log = logging.getLogger(__name__)

FOLD_MEASURES = ("command_accuracy", "non_command_false_accept", "unknown_false_accept")
FOLD_MODEL = "int8/ai-edge-litert"
"""The export and runtime every fold is scored with: what the node runs."""
EQUAL_FALSE_ACCEPT = 0.02
"""Where recipes are also compared at equal false accepts: issue 22's bound on other words and
silence taken for a command."""


def fold_of(voice: str, folds: int) -> int:
    """The fold a speaker belongs to: fixed for a speaker whatever else is in the data."""
    return zlib.crc32(voice.encode()) % folds


def clip_folds(clips: Sequence[Clip], folds: int) -> np.ndarray:
    """Fold per clip (-1: not a recorded person's clip, trains in every fold)."""
    return np.array([fold_of(c.voice if c.label != SILENCE_LABEL else c.path.name, folds)
                     if c.engine == PEOPLE_ENGINE else -1 for c in clips])


def summarise(per_fold: Sequence[dict[str, Any]], labels: Sequence[str]) -> dict[str, Any]:
    """Mean, min and max over folds of each measure and of each word's accuracy."""
    def stats(values: list[float]) -> dict[str, float]:
        return {"mean": float(np.mean(values)), "min": float(np.min(values)),
                "max": float(np.max(values))}

    out: dict[str, Any] = {m: stats([f[m] for f in per_fold if f.get(m) is not None])
                           for m in FOLD_MEASURES}
    out["per_class"] = {lab: stats([f["per_class"][lab] for f in per_fold
                                    if lab in f["per_class"]])
                        for lab in labels if any(lab in f["per_class"] for f in per_fold)}
    return out


def run_folds(clips: list[Clip], noises: list[np.ndarray], settings: PipelineSettings,
              folds: int, baseline: Path | None = None,
              only: Sequence[int] | None = None) -> dict[str, Any]:
    """Train one model per fold (every other fold's people + all other sources), score its
    int8 export in the node runtime on the fold's people; `baseline` (e.g. the bundled model)
    is scored on the same clips when it reads the same features. `only`: just these folds
    (a quicker, paired comparison of two recipes on the same people)."""
    from edge_node.model import read_manifest
    from training.evaluation.metrics import scores
    from training.evaluation.node_eval import predict_in_runtime

    out = Path(settings.out)
    data = prepare(clips, noises, settings)
    fold = clip_folds(data.clips, folds)
    if not (fold >= 0).any():
        raise ValueError("no recorded people in the data: pass --speech-commands")
    masks = voice_masks(data, clips, settings)
    same_features = baseline is not None and read_manifest(baseline).features == settings.features
    result: dict[str, Any] = {"folds": folds, "only": list(only) if only is not None else None,
                              "per_fold": [], "baseline_per_fold": [],
                              "baseline": str(baseline) if same_features else None}
    for k in (range(folds) if only is None else only):
        test = fold == k
        train = ~test & ~masks.val_voices
        val = masks.validation & ~test
        run = run_experiment(data, train, val, test & masks.scored, settings, out / f"fold-{k}")
        scored = run["models"][FOLD_MODEL]
        result["per_fold"].append({key: scored[key] for key in
                                   (*FOLD_MEASURES, "per_class", "clips", "command_clips",
                                    "non_command_clips")})
        log.info("fold %d/%d: commands %.1f%%, other words and silence taken for a command "
                 "%.1f%%", k + 1, folds, 100 * scored["command_accuracy"],
                 100 * scored["non_command_false_accept"])
        if same_features:
            mask = test & masks.scored
            probs = predict_in_runtime(baseline, data.clean.x[mask], "ai-edge-litert")
            base = scores(probs, data.y[mask], settings.labels, data.engines[mask])
            result["baseline_per_fold"].append({key: base[key] for key in
                                                (*FOLD_MEASURES, "per_class")})
    result["summary"] = summarise(result["per_fold"], settings.labels)
    if result["baseline_per_fold"]:
        result["baseline_summary"] = summarise(result["baseline_per_fold"], settings.labels)
    (out / "folds.json").write_text(json.dumps(result, indent=1))
    return result


def format_folds(result: dict[str, Any], labels: Sequence[str], name: str = "this recipe",
                 baseline_name: str = "bundled") -> str:
    """A Markdown table: each measure's mean (min-max over folds), beside the baseline's."""
    def cell(stats: dict[str, float] | None) -> str:
        if not stats:
            return "-"
        return (f"{100 * stats['mean']:.1f}% ({100 * stats['min']:.1f}-"
                f"{100 * stats['max']:.1f})")

    summary, base = result["summary"], result.get("baseline_summary")
    rows = [("commands right (argmax)", "command_accuracy"),
            ("other words and silence taken for a command", "non_command_false_accept"),
            ("other words taken for a command", "unknown_false_accept")]
    scored = len(result["per_fold"])
    folds = (f"{result['folds']} speaker folds" if scored == result["folds"]
             else f"{scored} of {result['folds']} speaker folds")
    head = f"| {folds} | {name} |" + (f" {baseline_name} |" if base else "")
    lines = [head, "|---|---|" + ("---|" if base else "")]
    for title, key in rows:
        lines.append(f"| {title} | {cell(summary.get(key))} |"
                     + (f" {cell(base.get(key))} |" if base else ""))
    for label in labels:
        if label in summary["per_class"]:
            lines.append(f"| `{label}` | {cell(summary['per_class'][label])} |"
                         + (f" {cell(base['per_class'].get(label))} |" if base else ""))
    return "\n".join(lines)


def fold_settings(settings: PipelineSettings, epochs: int | None) -> PipelineSettings:
    """The settings of the fold runs (`epochs` bounds them, as for leave-one-engine-out)."""
    return settings if epochs is None else replace(
        settings, train=replace(settings.train, epochs=epochs))


def fold_report(run: Path, people: Path, folds: int, baseline: Path,
                labels: Sequence[str]) -> dict[str, Any]:
    """Assemble `folds.json` from the fold runs a `--folds` run left in `run` (fold-K/
    result.json: all of them, or those an interrupted run finished), scoring `baseline` on the
    same people of each fold in the node runtime (each clip centred, as the folds score)."""
    from edge_node.model import Model
    from training.data.dataset import load_label_folders
    from training.evaluation.breakdown import predict_clips
    from training.evaluation.metrics import scores

    model = Model(baseline)
    clips = load_label_folders(people, model.manifest.commands, PEOPLE_ENGINE)
    fold = clip_folds(clips, folds)
    result: dict[str, Any] = {"folds": folds, "per_fold": [], "baseline_per_fold": [],
                              "baseline": str(baseline)}
    for k, scored in sorted(fold_scores(run).items()):
        if k >= folds:
            continue
        result["per_fold"].append({key: scored[key] for key in (*FOLD_MEASURES, "per_class")})
        mine = [c for c, f in zip(clips, fold, strict=True) if f == k]
        predicted = predict_clips(model, mine)
        probs = np.eye(len(model.labels))[[model.labels.index(p) for p in predicted]]
        y = np.array([model.labels.index(c.label) for c in mine])
        base = scores(probs, y, model.labels, [c.engine for c in mine])
        result["baseline_per_fold"].append({key: base[key] for key in (*FOLD_MEASURES,
                                                                         "per_class")})
    result["summary"] = summarise(result["per_fold"], labels)
    result["baseline_summary"] = summarise(result["baseline_per_fold"], labels)
    (Path(run) / "folds.json").write_text(json.dumps(result, indent=1))
    return result


def fold_results(run: Path) -> dict[int, dict[str, Any]]:
    """Per fold a `--folds` run finished (all, or those an interrupted run got to): its
    `result.json` (scores per exported model, training history, `provenance`)."""
    found = {int(path.parent.name.split("-")[1]): json.loads(path.read_text())
             for path in Path(run).glob("fold-*/result.json")}
    if not found:
        raise FileNotFoundError(f"no fold-K/result.json under {run}")
    return found


def fold_scores(run: Path) -> dict[int, dict[str, Any]]:
    """Per finished fold: its int8 model's scores on the fold's people (`FOLD_MEASURES`,
    per-class accuracy, ...)."""
    return {k: result["models"][FOLD_MODEL] for k, result in fold_results(run).items()}


def fold_provenance(run: Path) -> dict[int, dict[str, Any] | None]:
    """Per finished fold: what its model was made with (`provenance`; None for runs made
    before it was kept)."""
    return {k: result.get("provenance") for k, result in fold_results(run).items()}


def commands_at_equal_false_accept(run: Path, folds: Sequence[int],
                                   max_false_accept: float = EQUAL_FALSE_ACCEPT
                                   ) -> list[float] | None:
    """Per fold, the commands right when the run's model is shifted to take at most
    `max_false_accept` of the fold's other words and silence for a command (None when a fold
    kept no test probabilities)."""
    from training.evaluation.metrics import commands_at_false_accept

    found = []
    for k in folds:
        saved = load_test_probabilities(Path(run) / f"fold-{k}", FOLD_MODEL)
        value = None if saved is None else commands_at_false_accept(*saved, max_false_accept)
        if value is None:
            return None
        found.append(value)
    return found


def compare_fold_runs(runs: Sequence[tuple[str, Path]]) -> str:
    """Recipes side by side on the speaker folds all of them finished, each paired fold by
    fold with the first: the differences, not the means, say whether a change helps (the
    folds differ by more than most changes do). Where the runs kept their test probabilities,
    also at equal false accepts (`EQUAL_FALSE_ACCEPT`), since a change can move a model
    along its trade-off instead of improving it."""
    scored = {name: fold_scores(run) for name, run in runs}
    common = sorted(set.intersection(*(set(s) for s in scored.values())))
    if not common:
        raise ValueError("the runs have no finished fold in common")
    reference = scored[runs[0][0]]

    def pct(value: float) -> str:
        return f"{100 * value:.1f}%"

    def points(values: list[float]) -> str:
        return ", ".join(f"{100 * v:+.1f}" for v in values)

    equal = {name: commands_at_equal_false_accept(run, common) for name, run in runs}
    at = f"{100 * EQUAL_FALSE_ACCEPT:g}%"
    lines = ["Each cell: commands right / other words and silence taken for a command "
             "(argmax, int8 in the node runtime, on the fold's people). Last column: commands "
             f"right with the scores shifted until at most {at} of the other words and silence "
             "are taken for a command, mean over the folds (fold by fold; - where a run kept "
             "no test probabilities).", "",
             "| recipe | " + " | ".join(f"fold {k}" for k in common)
             + " | mean | paired with the first, points (commands; other words) | "
             f"commands at {at} |",
             "|---" * (len(common) + 4) + "|"]
    for name, _ in runs:
        folds = scored[name]
        mean = {m: float(np.mean([folds[k][m] for k in common])) for m in FOLD_MEASURES}
        cells = [f"{pct(folds[k]['command_accuracy'])} / "
                 f"{pct(folds[k]['non_command_false_accept'])}" for k in common]
        paired = "" if name == runs[0][0] else (
            points([folds[k]["command_accuracy"] - reference[k]["command_accuracy"]
                    for k in common]) + "; " +
            points([folds[k]["non_command_false_accept"]
                    - reference[k]["non_command_false_accept"] for k in common]))
        shifted = equal[name]
        at_equal = "-" if shifted is None else (
            f"{pct(float(np.mean(shifted)))} ({', '.join(pct(v) for v in shifted)})")
        lines.append(f"| {name} | " + " | ".join(cells)
                     + f" | {pct(mean['command_accuracy'])} / "
                       f"{pct(mean['non_command_false_accept'])} | {paired} | {at_equal} |")
    caveats = mismatches({name: fold_provenance(run) for name, run in runs}, common)
    return "\n".join([*lines, *([""] + caveats if caveats else [])])


def fold_streaming(run: Path, recordings: Sequence[Path], commands: Sequence[str],
                   thresholds: Sequence[float], folds: int | None = None,
                   isolation: Path | None = DEFAULT_ISOLATION_MODEL
                   ) -> dict[int, list[dict[str, Any]]]:
    """Per fold model of a `--folds` run, the node detector swept over the people recordings
    (`kws-train people-stream`), each scored only on the commands of its own fold's speakers:
    streaming on people every model never heard, from five models instead of one build.

    The recordings say every evaluation speaker's clips; a fold model trained on the other
    folds' speakers, so their words take their detections but count in neither recall nor
    false activations (`streaming_scores`' `heard`). Talk is held out from every fold.
    Kept in `RUN/fold-K/streaming.json` (by recording and isolation check), so a comparison
    reruns no model. `folds`: how many the run made (None: its `folds.json`, written when it
    finished). `isolation`: the isolation check the detector runs (None: without it)."""
    from training.evaluation.calibrate import pool_scores
    from training.evaluation.metrics import streaming_scores
    from training.evaluation.node_eval import node_sweep

    out: dict[int, list[dict[str, Any]]] = {}
    if folds is None:
        folds = int(json.loads((Path(run) / "folds.json").read_text())["folds"])
    metas = {recording: json.loads(recording.with_suffix(".json").read_text())
             for recording in recordings}
    # Sweeps without the check keep the keys they had before there was one.
    check = "" if isolation is None else f":isolation={read_manifest(isolation).sha256[:16]}"
    for k in sorted(fold_scores(run)):
        fold_dir = Path(run) / f"fold-{k}"
        cache_path = fold_dir / "streaming.json"
        cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}

        def heard(event: dict[str, Any], k: int = k, folds: int = folds) -> bool:
            return event.get("engine") == PEOPLE_ENGINE and fold_of(event["voice"], folds) != k
        rows: list[dict[str, Any]] = []
        for recording, meta in metas.items():
            key = f"{recording.resolve()}:{meta['seed']}:{meta['duration_s']}{check}"
            if any(str(t) not in cache.get(key, {}) for t in thresholds):
                found = node_sweep(fold_dir / "model_int8.tflite", recording, thresholds,
                                   isolation)
                cache[key] = {str(t): found[float(t)] for t in thresholds}
                cache_path.write_text(json.dumps(cache))
            rows.append({float(t): streaming_scores(cache[key][str(t)], meta["events"],
                                                    meta["duration_s"], commands, heard=heard)
                         for t in thresholds})
        out[k] = [pool_scores(t, [r[t] for r in rows]) for t in map(float, thresholds)]
    return out
