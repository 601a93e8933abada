"""Leave-one-engine-out over several training seeds: is a change real or seed noise?

One LOEO estimate moves by +/-10 points between training seeds on this project's data (espeak
held out: 68.5 / 49.1 / 62.3% for seeds 1-3), so a recipe change is only worth keeping when it
beats that spread. This featurises once (clean + augmented, with the data seed) and trains one
model per (held-out engine, seed), scored in Keras on all of the held-out engine's clips:
quick (about 20 s per model for the TC-ResNet here), for comparing settings; the exported,
node-runtime figures come from `kws-train train`.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from training.dataset import Clip
from training.metrics import accuracy_at_false_accepts, scores
from training.pipeline import PipelineSettings, held_out_engines, prepare, voice_masks

log = logging.getLogger(__name__)


def loeo_over_seeds(clips: list[Clip], noises: list[np.ndarray], settings: PipelineSettings,
                    seeds: Sequence[int], holdout: Sequence[str] = (),
                    probs_dir: Path | None = None) -> dict[str, Any]:
    """{engine: {"command_accuracy": [per seed], "unknown_false_accept": [per seed]}}, for
    every engine or only those in `holdout` (the one a change is meant for: quicker).

    With `probs_dir`, each model's probabilities on its held-out clips are kept there
    (`<engine>-seed<k>.npz`: probs, labels, voices, paths), so decision rules can be compared
    later without training again."""
    from training.train import fit

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
        per_seed: dict[str, list[float]] = {"command_accuracy": [], "unknown_false_accept": [],
                                            "command_accuracy_at_5pct": []}
        for seed in seeds:
            train = replace(settings.train, seed=seed, epochs=settings.loeo_epochs)
            model, _, _ = fit(x_train, y_train, weights, data.clean.x[val], data.y[val],
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
            summary["command_accuracy_at_5pct"], _ = accuracy_at_false_accepts(
                probs, data.y[test], settings.labels)
            for key in per_seed:
                per_seed[key].append(float(summary[key]))
            log.info("held out %s, seed %d: command accuracy %.1f%% (%.1f%% at 5%% false "
                     "accepts), unknown as command %.1f%%", engine, seed,
                     100 * summary["command_accuracy"], 100 * summary["command_accuracy_at_5pct"],
                     100 * summary["unknown_false_accept"])
        result[engine] = per_seed
    return result


def format_table(result: dict[str, Any], seeds: Sequence[int]) -> str:
    """Markdown: mean, spread and each seed's value per held-out engine; then the command
    accuracy each model reaches with its `_unknown_` prior set so that at most 5% of
    `_unknown_` clips are reported as a command at 0.6 (the fair comparison of two recipes)."""
    lines = ["| held-out engine | command accuracy: mean (min-max) | per seed "
             f"({', '.join(map(str, seeds))}) | `_unknown_` as command: mean | "
             "at <= 5% `_unknown_` as command (0.6): mean, per seed |",
             "|---|---|---|---|---|"]
    for engine, per_seed in result.items():
        acc = 100 * np.array(per_seed["command_accuracy"])
        ufa = 100 * np.array(per_seed["unknown_false_accept"])
        fair = 100 * np.array(per_seed.get("command_accuracy_at_5pct", []), dtype=float)
        fair_cell = (f"{fair.mean():.1f}% ({' / '.join(f'{a:.1f}' for a in fair)})"
                     if len(fair) else "n/a")
        lines.append(f"| {engine} | {acc.mean():.1f}% ({acc.min():.1f}-{acc.max():.1f}) | "
                     f"{' / '.join(f'{a:.1f}' for a in acc)} | {ufa.mean():.1f}% | "
                     f"{fair_cell} |")
    return "\n".join(lines)


def load(path: Path) -> tuple[list[int], dict[str, Any]]:
    """Seeds and per-seed results of an earlier `--seeds` run (its `seeds.json` or its dir)."""
    path = path / "seeds.json" if path.is_dir() else path
    try:
        saved = json.loads(path.read_text())
        return [int(s) for s in saved["seeds"]], dict(saved["loeo"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a `kws-train train --seeds` result: {exc}") from exc


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
                ("command_accuracy_at_5pct", " (at <= 5% `_unknown_` as command)"))
    for (engine, per_seed), (key, what) in itertools.product(result.items(), measures):
        if key not in base.get(engine, {}) or key not in per_seed:
            continue
        mine = dict(zip(seeds, per_seed[key], strict=True))
        theirs = dict(zip(base_seeds, base[engine][key], strict=True))
        shared = [s for s in seeds if s in theirs]
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
