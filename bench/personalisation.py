"""Personalisation over many new voices: what a handful of recordings buys, and what it costs.

Leave-one-engine-out says how a model does on a voice unlike any it trained on; this says how
far `kws-train finetune` takes such a voice. Each voice of an engine the base model never heard
stands in for one user: it says every command `--takes` times and `--unknown` other words and
sentences. `finetune` trains on `--shots` recordings per label (the commands and the other
words, as a user records them with `edge-node record`) and both models are scored on the rest,
held back, in the node's runtime (int8, ai-edge-litert): command accuracy and `_unknown_` taken
for a command at the node's threshold. Each tuned model is also scored on the other voices'
held-back clips, which it never heard: does a model tuned to one person lose the others?
With `--stream-minutes N` each voice also speaks an N-minute recording alone (commands, other
words and sentences over changing noise, `kws-train stream`'s generator), which both models
stream through the node's detector: recall and false activations per hour at 0.6. With
`--people DIR` (Speech Commands layout) every model is also scored on recorded people no
shipped model trained on (the held-out speakers): does a model tuned to one voice lose them?

Run: `.venv/bin/python -m bench.personalisation --base runs/x/final --data runs/x/data
--voices espeak=8,piper=2 [--benchmarks]` (the base model must not have trained on those
engines: `kws-train train --data <synth without them> --no-loeo`). `--base` also takes an
installed model (`edge_node/models/default.tflite`, with its Keras weights beside it).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from edge_node.model import Manifest, read_manifest
from training.data.dataset import (
    PEOPLE_ENGINE,
    SILENCE_LABEL,
    Clip,
    load_label_folders,
    load_synthetic,
    split_people,
)
from training.data.dataset_synth import synthesize_dataset
from training.data.featurize import featurize, load_audio
from training.data.make import STREAM_SEED_OFFSET, parse_voices
from training.data.noise import noise_bank
from training.data.stream_synth import make_stream_recording
from training.evaluation.benchmarks import BENCHMARKS, machine, write_section
from training.evaluation.metrics import recall_at, scores, streaming_scores
from training.evaluation.node_eval import node_sweep, predict_in_runtime
from training.models.finetune import (
    BaseModel,
    FinetuneSettings,
    finetune,
    replay_clips,
    split_shots,
)
from training.tts.engines import make_voices

RUNTIME = "ai-edge-litert"
THRESHOLD = 0.6
"""The node's default threshold, at which streaming is read."""
SWEEP = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
"""Thresholds swept on each voice's recording, to compare the two models at equal false
activations as well."""


def voice_clips(root: Path, labels: list[str]) -> dict[str, list[Clip]]:
    """The bench voices' clips, by voice."""
    by_voice: dict[str, list[Clip]] = defaultdict(list)
    for clip in load_synthetic(root, [lab for lab in labels if Manifest.is_command(lab)]):
        by_voice[clip.voice].append(clip)
    return dict(sorted(by_voice.items()))


def clean_features(clips: list[Clip], settings: FinetuneSettings, base: BaseModel,
                   ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features (no augmentation), label indices and voice of `clips`."""
    manifest = read_manifest(base.tflite)
    labels = list(manifest.labels)
    audio = load_audio(clips, settings.workers)
    feats = featurize(audio, clips, list(range(len(clips))), manifest.features, None, 1,
                      settings.seed, settings.workers, desc="held-back features")
    chosen = [clips[i] for i in feats.clip_index]
    return feats.x, np.array([labels.index(c.label) for c in chosen]), [c.voice for c in chosen]


def held_back(clips: dict[str, list[Clip]], settings: FinetuneSettings, base: BaseModel,
              ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features, label indices and voice of every clip `finetune` holds back (same split)."""
    held = [c for voice in clips.values() for c in split_shots(voice, settings.shots,
                                                               settings.seed)[1]]
    return clean_features(held, settings, base)


def people_clips(root: Path, labels: list[str], per_label: int, seed: int) -> list[Clip]:
    """Up to `per_label` clips of each command and of `_unknown_` by the recorded people no
    shipped model trains on (`split_people`'s held-out speakers)."""
    commands = [lab for lab in labels if Manifest.is_command(lab)]
    held = split_people(load_label_folders(root, commands, PEOPLE_ENGINE))[1]
    rng = np.random.default_rng(seed)
    chosen = []
    for label in sorted({c.label for c in held} - {SILENCE_LABEL}):
        group = sorted((c for c in held if c.label == label), key=lambda c: str(c.path))
        chosen += [group[i] for i in sorted(rng.permutation(len(group))[:per_label])]
    return chosen


def summary(probs: np.ndarray, y: np.ndarray, labels: list[str]) -> dict[str, Any]:
    result = scores(probs, y, labels, ["voice"] * len(y))
    return {"command_accuracy": result["command_accuracy"],
            "unknown_as_command": result["unknown_false_accept_at_threshold"]}


def voice_recording(voice: str, words: list[str], minutes: float, seed: int, work: Path) -> Path:
    """A recording spoken by one bench voice alone (made once, kept in `work`)."""
    engine, voice_id = voice.split(":", 1)
    speaker = make_voices(engine, 1, seed, start=int(voice_id.rsplit("-", 1)[1]))[0]
    if speaker.voice_id != voice_id:
        raise ValueError(f"cannot rebuild voice {voice} (got {speaker.voice_id})")
    path = work / "streams" / f"{voice_id}.wav"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        make_stream_recording(path, path.with_suffix(".json"), seed=seed + STREAM_SEED_OFFSET,
                              duration_s=minutes * 60, voices=[speaker], words=words)
    return path


def stream_sweep(model: Path, recording: Path, commands: list[str]) -> dict[str, Any]:
    """Detected commands and false activations per hour of the node's detector at each of
    `SWEEP` (one pass of the model)."""
    meta = json.loads(recording.with_suffix(".json").read_text())
    result = {}
    for threshold, found in node_sweep(model, recording, SWEEP).items():
        scored = streaming_scores(found, meta["events"], meta["duration_s"], commands)
        result[f"{threshold:g}"] = {"recall": scored["recall"],
                                    "per_hour": scored["false_activations_per_hour"],
                                    "detected": scored["detected"],
                                    "commands": scored["commands"]}
    return result


def pooled(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Recordings of equal length taken together: all commands, the mean rate."""
    found = sum(r["detected"] for r in results)
    said = sum(r["commands"] for r in results)
    return {"recall": found / said if said else None, "detected": found, "commands": said,
            "per_hour": float(np.mean([r["per_hour"] for r in results]))}


def pooled_curve(rows: list[dict[str, Any]], model: str) -> list[tuple[float, dict[str, Any]]]:
    """(threshold, pooled scores) along the sweep, as `recall_at` reads it."""
    curve = []
    for t in SWEEP:
        p = pooled([r["stream"][model][f"{t:g}"] for r in rows])
        curve.append((t, {"recall": p["recall"], "false_activations_per_hour": p["per_hour"]}))
    return curve


def run(base: BaseModel, data: list[Path], voices: dict[str, int], work: Path,
        settings: FinetuneSettings, takes: int, unknown: int,
        stream_minutes: float = 0.0, people: list[Clip] | None = None) -> list[dict[str, Any]]:
    labels = list(read_manifest(base.tflite).labels)
    root = work / "voices"
    if not (root / "clips.csv").is_file():
        synthesize_dataset(root, seed=settings.seed, words=[lab for lab in labels
                                                             if Manifest.is_command(lab)],
                           clips_per_word_per_engine={e: n * takes for e, n in voices.items()},
                           unknown_clips_per_engine={e: n * unknown for e, n in voices.items()},
                           silence_clips=0, workers=settings.workers, engines=tuple(voices),
                           takes_per_voice=takes)
    clips = voice_clips(root, labels)
    x, y, owner = held_back(clips, settings, base)
    owner_arr = np.array(owner)
    base_probs = predict_in_runtime(base.tflite, x, RUNTIME)
    if people:
        x_people, y_people, _ = clean_features(people, settings, base)
        base_people = summary(predict_in_runtime(base.tflite, x_people, RUNTIME), y_people,
                              labels)
    replay = replay_clips(base, data)
    noises = noise_bank(settings.seed)
    rows = []
    for voice, its in clips.items():
        t0 = time.monotonic()
        tuned = work / "tuned" / voice.replace(":", "-")
        finetune(base, its, replay, noises, tuned, settings)
        seconds = time.monotonic() - t0
        tuned_probs = predict_in_runtime(tuned / "model_int8.tflite", x, RUNTIME)
        own, others = owner_arr == voice, owner_arr != voice
        row = {"voice": voice, "held_back": int(own.sum()), "seconds": round(seconds, 1)}
        for name, probs in (("base", base_probs), ("tuned", tuned_probs)):
            row[name] = summary(probs[own], y[own], labels)
            row[f"{name}_others"] = summary(probs[others], y[others], labels)
        if people:
            row["base_people"] = base_people
            row["tuned_people"] = summary(predict_in_runtime(
                tuned / "model_int8.tflite", x_people, RUNTIME), y_people, labels)
        if stream_minutes > 0:
            commands = [lab for lab in labels if Manifest.is_command(lab)]
            recording = voice_recording(voice, commands, stream_minutes, settings.seed, work)
            row["stream"] = {name: stream_sweep(model, recording, commands) for name, model
                             in (("base", base.tflite), ("tuned", tuned / "model_int8.tflite"))}
        rows.append(row)
        print(json.dumps(row))
    return rows


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def table(rows: list[dict[str, Any]]) -> str:
    groups = ["base", "tuned", "base_others", "tuned_others"]
    people = all("tuned_people" in r for r in rows)
    if people:
        groups += ["base_people", "tuned_people"]
    lines = ["| voice | base: commands / `_unknown_` as command | personalised | the other "
             "voices, base | the other voices, personalised | "
             + ("recorded people, base | recorded people, personalised | " if people else "")
             + "fine-tune time |", "|---" * (len(groups) + 2) + "|"]

    def cell(s: dict[str, Any]) -> str:
        return f"{pct(s['command_accuracy'])} / {pct(s['unknown_as_command'])}"

    def mean(key: str, field: str) -> float | None:
        values = [r[key][field] for r in rows if r[key][field] is not None]
        return float(np.mean(values)) if values else None

    for r in rows:
        lines.append(f"| {r['voice']} | " + " | ".join(cell(r[g]) for g in groups)
                     + f" | {r['seconds']} s |")
    means = {k: {f: mean(k, f) for f in ("command_accuracy", "unknown_as_command")}
             for k in groups}
    cells = [cell(means[g]) for g in groups]
    cells[1] = f"**{cells[1]}**"
    lines.append(f"| **mean of {len(rows)}** | " + " | ".join(cells)
                 + f" | {np.mean([r['seconds'] for r in rows]):.0f} s |")
    if all("stream" in r for r in rows):
        lines += ["", f"Streaming, each voice alone (node detector at {THRESHOLD}): recall, false "
                  "activations per hour", "", "| voice | base | personalised |", "|---|---|---|"]
        key = f"{THRESHOLD:g}"

        def stream_cell(results: list[dict[str, Any]]) -> str:
            p = pooled(results)
            return f"{pct(p['recall'])} ({p['detected']}/{p['commands']}), {p['per_hour']:.1f}"

        for r in rows:
            lines.append(f"| {r['voice']} | {stream_cell([r['stream']['base'][key]])} | "
                         f"{stream_cell([r['stream']['tuned'][key]])} |")
        lines.append(f"| **all {len(rows)}** | "
                     f"{stream_cell([r['stream']['base'][key] for r in rows])} | "
                     f"**{stream_cell([r['stream']['tuned'][key] for r in rows])}** |")
        base, tuned = pooled_curve(rows, "base"), pooled_curve(rows, "tuned")
        lines += ["", "All voices together along the sweep (thresholds "
                  f"{', '.join(f'{t:g}' for t in SWEEP)}): the personalised models' recall at the "
                  "base model's false-activation rate at each threshold", "",
                  "| threshold | false activations per hour | base recall | personalised recall "
                  "at that rate |", "|---|---|---|---|"]
        for (t, b) in base:
            lines.append(f"| {t:g} | {b['false_activations_per_hour']:.1f} | {pct(b['recall'])} | "
                         f"{pct(recall_at(tuned, b['false_activations_per_hour']))} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True,
                        help="the base model: a run directory (RUN/final) or an installed "
                             "`.tflite` with its Keras weights beside it (e.g. "
                             "edge_node/models/default.tflite)")
    parser.add_argument("--data", type=Path, action="append", required=True,
                        help="the base model's dataset(s), replayed against forgetting")
    parser.add_argument("--voices", default="espeak=8,piper=2",
                        help="new voices per engine (engines the base never trained on)")
    parser.add_argument("--takes", type=int, default=15, help="recordings per command and voice")
    parser.add_argument("--unknown", type=int, default=20,
                        help="recordings of other words and sentences per voice")
    parser.add_argument("--shots", type=int, default=5, help="recordings per label tuned on")
    parser.add_argument("--epochs", type=int, default=FinetuneSettings.epochs)
    parser.add_argument("--learning-rate", type=float, default=FinetuneSettings.learning_rate)
    parser.add_argument("--replay", type=int, default=FinetuneSettings.replay_clips,
                        help="clips of the base's data mixed in")
    parser.add_argument("--no-balance", action="store_true",
                        help="fine-tune without the label-share weights (as before 2026-12)")
    parser.add_argument("--stream-minutes", type=float, default=0.0,
                        help="also stream a recording of this length by each voice alone")
    parser.add_argument("--people", type=Path,
                        help="recorded people (Speech Commands layout, e.g. "
                             "../shared/speech_commands): also score every model on its "
                             "held-out speakers")
    parser.add_argument("--people-clips", type=int, default=40,
                        help="held-out people's clips per command and of other words")
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("runs/personalisation"))
    parser.add_argument("--benchmarks", type=Path, nargs="?", const=BENCHMARKS,
                        help=f"write the table to this file ({BENCHMARKS.name} if none given)")
    parser.add_argument("--section", default="personalisation-voices",
                        help="BENCHMARKS.md section to write (another one keeps the earlier "
                             "measurement, e.g. for a new base model)")
    parser.add_argument("--title", default="Personalisation over many new voices "
                                           "(5 recordings per command)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    settings = FinetuneSettings(shots=args.shots, epochs=args.epochs, seed=args.seed,
                                workers=args.workers, balance=not args.no_balance,
                                learning_rate=args.learning_rate, replay_clips=args.replay)
    voices = parse_voices(args.voices)
    base = BaseModel.of(args.base)
    manifest = read_manifest(base.tflite)
    people = people_clips(args.people, list(manifest.labels), args.people_clips,
                          args.seed) if args.people else None
    rows = run(base, args.data, voices, args.work, settings, args.takes, args.unknown,
               args.stream_minutes, people)
    text = table(rows)
    print(text)
    if args.benchmarks:
        people_note = (f" \"Recorded people\": the same models on {len(people)} clips of "
                       "the held-out speakers of `--people` (no shipped model trained on "
                       f"them; up to {args.people_clips} of each command and of other "
                       "words)." if people else "")
        body = (f"Machine: {machine()}. `python -m bench.personalisation --base {args.base} "
                f"--voices {args.voices} --takes {args.takes} --unknown {args.unknown} "
                f"--shots {args.shots} --seed {args.seed} --stream-minutes "
                f"{args.stream_minutes:g}"
                + (f" --people {args.people} --people-clips {args.people_clips}"
                   if people else "")
                + f"`. Base model: {manifest.name} "
                f"{manifest.version}, trained on {', '.join(manifest.extra.get('engines', []))}; "
                f"each voice below is of an engine it never heard and stands in for one user, "
                f"who records {args.shots} of each command and {args.shots} other words or "
                f"sentences. Scored on the voice's other recordings (held back: "
                f"{args.takes - args.shots} per command, {args.unknown - args.shots} other "
                f"words), int8 in {RUNTIME}; `_unknown_` taken for a command at 0.6. \"The "
                f"other voices\": the same model on the held-back clips of every other voice "
                f"of this table.{people_note}\n\n{text}\n")
        write_section(args.section, args.title, body, args.benchmarks)


if __name__ == "__main__":
    main()
