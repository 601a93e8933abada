"""Leave-one-engine-out over several training seeds: is a change real or seed noise?

One LOEO estimate moves by +/-10 points between training seeds on this project's data (espeak
held out: 68.5 / 49.1 / 62.3% for seeds 1-3), so a recipe change is only worth keeping when it
beats that spread. This featurises once (clean + augmented, with the data seed) and trains one
model per (held-out engine, seed), scored in Keras on all of the held-out engine's clips:
quick (about 20 s per model for the TC-ResNet here), for comparing settings; the exported,
node-runtime figures come from `kws-train train`.

Clip scores did not predict streaming twice (BENCHMARKS.md), so a run can also stream: given
recordings spoken by one engine only (`kws-train stream --engines E`), each model that never
heard E is exported (int8) and run through the node's detector on E's recording, and its recall
at a fixed rate of false activations per hour is reported seed by seed, like the clip scores.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge_node.model import Manifest
from training.data.dataset import Clip
from training.evaluation.metrics import (
    accuracy_at_false_accepts,
    detection_at_false_accepts,
    recall_at,
    scores,
    streaming_scores,
)
from training.experiments.pipeline import PipelineSettings, held_out_engines, prepare, voice_masks

log = logging.getLogger(__name__)

STREAM_THRESHOLDS = tuple(round(0.2 + 0.05 * i, 2) for i in range(15))
"""The sweep each streamed model runs at (0.2-0.9): wide enough to reach a common rate."""


@dataclass(frozen=True)
class StreamCheck:
    """Streaming evaluation of each seed's held-out-engine model."""

    recordings: tuple[Path, ...]
    """Recordings (+ .json events); each is used for the engine that alone speaks in it."""
    models: Path
    """Where the exported int8 models go (`<engine>-seed<k>.tflite`)."""
    false_per_hour: float = 20.0
    """The rate recall is read at (interpolated along the threshold sweep)."""


def recording_engine(recording: Path) -> str | None:
    """The one engine speaking in a recording, or None when several (or unknown) do."""
    meta = json.loads(recording.with_suffix(".json").read_text())
    spoken = set(meta.get("engines") or {e.get("engine") for e in meta["events"]})
    return next(iter(spoken)) if len(spoken) == 1 else None


def stream_scores(model: Any, output: str, x_represent: np.ndarray, engine: str, seed: int,
                  trained_on: Sequence[str], settings: PipelineSettings, check: StreamCheck,
                  recordings: Sequence[Path]) -> dict[str, Any]:
    """Export one held-out-engine model and sweep it through the node's detector on the
    engine's recordings: {recording name: {"recall_at_rate", "sweep"}}."""
    from training.evaluation.node_eval import node_sweep
    from training.models.export import export, representative_sample

    path = export(model, check.models / f"{engine}-seed{seed}.tflite",
                  representative=representative_sample(x_represent, seed),
                  name=settings.name, version=settings.version, labels=settings.labels,
                  features=settings.features, output=output,
                  extra={"engines": sorted(trained_on)})
    found = {}
    for recording in recordings:
        meta = json.loads(recording.with_suffix(".json").read_text())
        rows = [(t, streaming_scores(d, meta["events"], meta["duration_s"], settings.commands))
                for t, d in node_sweep(path, recording, STREAM_THRESHOLDS).items()]
        found[recording.name] = {
            "recall_at_rate": recall_at(rows, check.false_per_hour),
            "sweep": [{"threshold": t, "recall": r["recall"],
                       "false_activations_per_hour": r["false_activations_per_hour"]}
                      for t, r in rows]}
    return found


CLIP_MEASURES = ("command_accuracy", "unknown_false_accept", "command_accuracy_at_5pct",
                 "command_detection_at_5pct")
"""Per-seed clip figures of a held-out engine, as `seeds.json` keeps them."""


def fair_measures(probs: np.ndarray, y_true: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """The two comparisons at <= 5% `_unknown_` reported as a command: argmax accuracy with the
    `_unknown_` prior scaled (at 0.6; depends on how peaked the probabilities are) and the
    commands detected with the threshold swept (does not; the one the tables show)."""
    prior_scaled, _ = accuracy_at_false_accepts(probs, y_true, labels)
    detected, _ = detection_at_false_accepts(probs, y_true, labels)
    return {"command_accuracy_at_5pct": prior_scaled, "command_detection_at_5pct": detected}


def loeo_over_seeds(clips: list[Clip], noises: list[np.ndarray], settings: PipelineSettings,
                    seeds: Sequence[int], holdout: Sequence[str] = (),
                    probs_dir: Path | None = None,
                    stream: StreamCheck | None = None) -> dict[str, Any]:
    """{engine: {"command_accuracy": [per seed], "unknown_false_accept": [per seed]}}, for
    every engine or only those in `holdout` (the one a change is meant for: quicker).

    With `probs_dir`, each model's probabilities on its held-out clips are kept there
    (`<engine>-seed<k>.npz`: probs, labels, voices, paths), so decision rules can be compared
    later without training again. With `stream`, the models of each engine that alone speaks in
    one of its recordings are also scored there ("stream_recall", and "streams" in detail)."""
    from training.models.train import fit

    engines = held_out_engines(clips)
    unknown = sorted(set(holdout) - set(engines))
    if unknown:
        raise ValueError(f"--holdout: no such engine in the data: {unknown} (have {engines})")
    data = prepare(clips, noises, settings)
    masks = voice_masks(data, clips, settings)
    result: dict[str, Any] = {}
    for engine in [e for e in engines if not holdout or e in holdout]:
        of_engine = data.engines == engine
        train_rows = (~masks.val_voices & ~of_engine)[data.augmented.clip_index]
        val = masks.validation & ~of_engine
        test = of_engine & masks.scored
        x_train = data.augmented.x[train_rows]
        y_train = data.y[data.augmented.clip_index[train_rows]]
        weights = np.array([data.clips[i].weight
                            for i in data.augmented.clip_index[train_rows]])
        per_seed: dict[str, list[Any]] = {key: [] for key in CLIP_MEASURES}
        own = [r for r in (stream.recordings if stream else ()) if recording_engine(r) == engine]
        if own:
            per_seed.update(stream_recall=[], streams=[], stream_rate=stream.false_per_hour)
        for seed in seeds:
            train = replace(settings.train, seed=seed, epochs=settings.loeo_epochs)
            model, _, output = fit(x_train, y_train, weights, data.clean.x[val], data.y[val],
                              len(settings.labels), train, verbose=0,
                              part_shapes=settings.part_shapes)
            probs = model.predict(data.clean.x[test][..., None].astype(np.float32),
                                  batch_size=512, verbose=0)
            got = scores(probs, data.y[test], settings.labels, data.engines[test])
            if probs_dir is not None:
                probs_dir.mkdir(parents=True, exist_ok=True)
                tested = [data.clips[i] for i in np.flatnonzero(test)]
                np.savez_compressed(
                    probs_dir / f"{engine}-seed{seed}.npz", probs=probs, y=data.y[test],
                    labels=np.array(settings.labels),
                    voices=np.array([clip.voice for clip in tested]),
                    paths=np.array([str(Path(clip.path).resolve()) for clip in tested]))
            summary = dict(got["per_engine"][engine])
            summary.update(fair_measures(probs, data.y[test], settings.labels))
            for key in CLIP_MEASURES:
                per_seed[key].append(float(summary[key]))
            if own and stream:
                trained_on = set(data.engines[data.augmented.clip_index[train_rows]])
                streamed = stream_scores(model, output, x_train, engine, seed, trained_on,
                                         settings, stream, own)
                rates = [r["recall_at_rate"] for r in streamed.values()]
                per_seed["streams"].append(streamed)
                per_seed["stream_recall"].append(
                    None if None in rates else float(np.mean(rates)))
                log.info("held out %s, seed %d, streaming: recall %s at %.0f false activations "
                         "per hour", engine, seed, rates, stream.false_per_hour)
            log.info("held out %s, seed %d: command accuracy %.1f%%, unknown as command "
                     "%.1f%%; at 5%% false accepts %.1f%% of the commands detected",
                     engine, seed, 100 * summary["command_accuracy"],
                     100 * summary["unknown_false_accept"],
                     100 * summary["command_detection_at_5pct"])
        result[engine] = per_seed
    return result


def format_table(result: dict[str, Any], seeds: Sequence[int]) -> str:
    """Markdown: mean, spread and each seed's value per held-out engine; then the share of
    command clips each model detects at the threshold that keeps `_unknown_` clips reported as
    a command within 5% (the fair comparison of two recipes on clips)."""
    streamed = [p for p in result.values() if "stream_recall" in p]
    rate = f"{streamed[0]['stream_rate']:.0f}" if streamed else ""
    lines = ["| held-out engine | command accuracy: mean (min-max) | per seed "
             f"({', '.join(map(str, seeds))}) | `_unknown_` as command: mean | "
             "commands detected at <= 5% `_unknown_` as command (threshold swept): mean, "
             "per seed |"
             + (f" streaming recall at {rate} false activations per hour: mean, per seed |"
                if streamed else ""),
             "|---|---|---|---|---|" + ("---|" if streamed else "")]
    for engine, per_seed in result.items():
        acc = 100 * np.array(per_seed["command_accuracy"])
        ufa = 100 * np.array(per_seed["unknown_false_accept"])
        fair = 100 * np.array(per_seed.get("command_detection_at_5pct", []), dtype=float)
        fair_cell = (f"{fair.mean():.1f}% ({' / '.join(f'{a:.1f}' for a in fair)})"
                     if len(fair) else "n/a")
        lines.append(f"| {engine} | {acc.mean():.1f}% ({acc.min():.1f}-{acc.max():.1f}) | "
                     f"{' / '.join(f'{a:.1f}' for a in acc)} | {ufa.mean():.1f}% | "
                     f"{fair_cell} |" + (f" {stream_cell(per_seed)} |" if streamed else ""))
    return "\n".join(lines)


def stream_cell(per_seed: dict[str, Any]) -> str:
    """Mean and per-seed streaming recall ("n/a" where the sweep never reached the rate)."""
    values = per_seed.get("stream_recall")
    if not values:
        return "n/a"
    known = [v for v in values if v is not None]
    mean = f"{100 * np.mean(known):.1f}%" if len(known) == len(values) else "n/a"
    return f"{mean} ({' / '.join('n/a' if v is None else f'{100 * v:.1f}' for v in values)})"


def load(path: Path) -> tuple[list[int], dict[str, Any]]:
    """Seeds and per-seed results of an earlier `--seeds` run (its `seeds.json` or its dir)."""
    path = path / "seeds.json" if path.is_dir() else path
    try:
        saved = json.loads(path.read_text())
        seeds, loeo = [int(s) for s in saved["seeds"]], dict(saved["loeo"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a `kws-train train --seeds` result: {exc}") from exc
    for engine, per_seed in loeo.items():
        # runs older than a measure get it from their kept probabilities, when they kept them
        saved_probs = [path.parent / "probs" / f"{engine}-seed{s}.npz" for s in seeds]
        if "command_detection_at_5pct" in per_seed or not all(p.is_file() for p in saved_probs):
            continue
        per_seed["command_detection_at_5pct"] = []
        for kept in saved_probs:
            with np.load(kept) as z:
                per_seed["command_detection_at_5pct"].append(detection_at_false_accepts(
                    z["probs"], z["y"], [str(label) for label in z["labels"]])[0])
    return seeds, loeo


def compare_with_reference(run: Path, reference: dict[str, bool]) -> dict[str, dict[str, Any]]:
    """Our held-out scores on the clips a reference recogniser heard (`reference`: clip path ->
    whether it was right; bench.reference_asr), from a `--seeds` run's saved probabilities:
    {engine: {closed_set, all_labels (per seed), right_when_reference_right,
    right_when_reference_wrong (over all seeds), clips}}."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((run / "probs").glob("*-seed*.npz")):
        engine = path.stem.rsplit("-seed", 1)[0]
        saved = np.load(path)
        if "paths" not in saved:
            raise ValueError(f"{path}: saved without clip paths (before 2026-11-25); run the "
                             "`--seeds` run again")
        labels = [str(label) for label in saved["labels"]]
        commands = np.array([Manifest.is_command(label) for label in labels])
        keep = np.array([commands[y] and str(p) in reference
                         for y, p in zip(saved["y"], saved["paths"], strict=True)], dtype=bool)
        if not keep.any():
            continue
        probs, y = saved["probs"][keep], saved["y"][keep]
        ours_all = probs.argmax(axis=1) == y
        ours_closed = np.where(commands, probs, -1.0).argmax(axis=1) == y
        theirs = np.array([reference[str(p)] for p in saved["paths"][keep]])
        entry = found.setdefault(engine, {"closed_set": [], "all_labels": [], "when_right": [],
                                          "when_wrong": [], "clips": int(keep.sum())})
        entry["closed_set"].append(float(ours_closed.mean()))
        entry["all_labels"].append(float(ours_all.mean()))
        entry["when_right"].extend(ours_all[theirs].tolist())
        entry["when_wrong"].extend(ours_all[~theirs].tolist())
    for entry in found.values():
        right, wrong = entry.pop("when_right"), entry.pop("when_wrong")
        entry["right_when_reference_right"] = float(np.mean(right)) if right else None
        entry["right_when_reference_wrong"] = float(np.mean(wrong)) if wrong else None
    return found


def format_comparison(result: dict[str, Any], seeds: Sequence[int],
                      baseline: tuple[list[int], dict[str, Any]]) -> str:
    """Markdown: this run against a baseline run, seed by seed (same seed = same data order and
    augmentation, so the per-seed difference is the change's effect plus less noise than the
    two means' spreads suggest); at the shipped prior, then at equal false accepts when both
    runs have that figure."""
    base_seeds, base = baseline
    lines = ["| held-out engine | seeds | baseline mean | this run's mean | difference per seed "
             "(points) | seeds better |", "|---|---|---|---|---|---|"]
    measures = (("command_accuracy", ""),
                ("command_detection_at_5pct", " (commands detected at <= 5% `_unknown_` as "
                                              "command, threshold swept)"),
                ("command_accuracy_at_5pct", " (argmax with the `_unknown_` prior scaled to "
                                             "<= 5% at 0.6)"),
                ("stream_recall", " (streaming recall at equal false activations per hour)"))
    for (engine, per_seed), (key, what) in itertools.product(result.items(), measures):
        if key not in base.get(engine, {}) or key not in per_seed:
            continue
        if key == "stream_recall" and base[engine].get("stream_rate") != per_seed["stream_rate"]:
            continue  # recall read at another false-activation rate: not comparable
        mine = dict(zip(seeds, per_seed[key], strict=True))
        theirs = dict(zip(base_seeds, base[engine][key], strict=True))
        shared = [s for s in seeds if s in theirs
                  and mine[s] is not None and theirs[s] is not None]
        if not shared:
            continue
        diff = [100 * (mine[s] - theirs[s]) for s in shared]
        lines.append(
            f"| {engine}{what} | {', '.join(map(str, shared))} | "
            f"{100 * np.mean([theirs[s] for s in shared]):.1f}% | "
            f"{100 * np.mean([mine[s] for s in shared]):.1f}% | "
            f"{' / '.join(f'{d:+.1f}' for d in diff)} (mean {np.mean(diff):+.1f}) | "
            f"{sum(d > 0 for d in diff)} of {len(shared)} |")
    if len(lines) == 2:
        return "The baseline shares no held-out engine and seed with this run."
    return "\n".join(lines)


def write(result: dict[str, Any], seeds: Sequence[int], out: Path,
          comparison: str = "") -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "seeds.json").write_text(json.dumps({"seeds": list(seeds), "loeo": result}, indent=1))
    path = out / "seeds.md"
    path.write_text(format_table(result, seeds) + "\n" + (f"\n{comparison}\n" if comparison
                                                          else ""))
    return path
