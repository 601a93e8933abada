"""Which clips a model gets wrong, by word and by voice: `kws-train breakdown`.

A leave-one-engine-out figure says how much a model misses on an unseen engine; this says
where. Run on the model trained without an engine, over that engine's clips, it showed that
kws-default misses espeak-ng's "go" and "no" in its British accents and "left" in its American
ones: a few words in some accents, not the voice as a whole.

It also scores a folder of recordings in the Speech Commands layout (`<label>/*.wav`: a
Speech Commands download, or people's own `edge-node record` clips): how a model does on
people rather than on synthetic voices, per word and per speaker.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from edge_node.model import Model
from training.data.audio_files import read_audio
from training.data.augment import place
from training.data.dataset import Clip, load_label_folders, load_synthetic
from training.data.vocab import UNKNOWN_LABEL


def predict_clips(model: Model, clips: Sequence[Clip]) -> list[str]:
    """The node runtime's label for each clip, centred in the model's window."""
    rng = np.random.default_rng(0)
    labels = []
    for clip in tqdm(clips, desc="classifying", unit="clip"):
        window = place(read_audio(clip.path), model.features.clip_samples, rng,
                       centre=True)
        labels.append(model.labels[int(np.argmax(model.predict_waveform(window)))])
    return labels


def voice_records(data: Path) -> dict[str, dict[str, Any]]:
    """dataset.json's voices by the `engine:voice_id` key clips carry."""
    meta = json.loads((data / "dataset.json").read_text())
    return {f'{v["engine"]}:{v["voice_id"]}': v for v in meta.get("voices", [])}


def _pct(hits: list[bool]) -> str:
    return f"{100 * sum(hits) / len(hits):.0f}%" if hits else "-"


def breakdown(clips: Sequence[Clip], predicted: Sequence[str], voices: dict[str, dict[str, Any]],
              words: Sequence[str], group: Callable[[dict[str, Any]], str]) -> dict[str, Any]:
    """Accuracy per word and voice group, and the most frequent confusions."""
    cells: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for clip, label in zip(clips, predicted, strict=True):
        key = group(voices.get(clip.voice, {}))
        cells[(key, clip.label)].append(label == clip.label)
        cells[(key, "all")].append(label == clip.label)
        cells[("all", clip.label)].append(label == clip.label)
        cells[("all", "all")].append(label == clip.label)
    groups = sorted({g for g, _ in cells} - {"all"}) + ["all"]
    table = {g: {w: cells.get((g, w), []) for w in [*words, "all"]} for g in groups}
    confusions = Counter((c.label, p) for c, p in zip(clips, predicted, strict=True)
                         if p != c.label)
    return {"table": table, "confusions": confusions.most_common(10)}


def format_breakdown(result: dict[str, Any], words: Sequence[str], group_name: str) -> str:
    cols = [*words, "all"]
    lines = [f"| {group_name} | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for group, row in result["table"].items():
        lines.append(f"| {group} (n={len(row['all'])}) | "
                     + " | ".join(_pct(row[w]) for w in cols) + " |")
    lines += ["", "Most frequent confusions (said -> taken for): " + ", ".join(
        f"{said} -> {taken} {n}" for (said, taken), n in result["confusions"])]
    return "\n".join(lines)


RECORDED_ENGINE = "recorded"
"""The engine name of clips from a folder of recordings (label folders, no clips.csv)."""


def recorded_voice_records(clips: Sequence[Clip]) -> dict[str, dict[str, Any]]:
    """Voice records for recordings: each speaker (Speech Commands' file-name prefix) is its
    own `base` and `voice_id`, so `--by base` gives a row per speaker, `--by engine` one row."""
    records = {}
    for clip in clips:
        speaker = clip.voice.split(":", 1)[1]
        records[clip.voice] = {"engine": clip.engine, "base": speaker, "voice_id": speaker}
    return records


def run_breakdown(model_path: Path, data: Path, engine: str | None, group_by: str) -> str:
    model = Model(model_path)
    words = list(model.manifest.commands)
    synthetic = (data / "clips.csv").is_file()
    loaded = (load_synthetic(data, tuple(words)) if synthetic
              else load_label_folders(data, tuple(words), RECORDED_ENGINE))
    clips = [c for c in loaded if c.label in (*words, UNKNOWN_LABEL) and c.scored
             and (engine is None or c.engine == engine)]
    if not any(c.label in words for c in clips):
        raise ValueError(f"no scored command clips{f' of {engine}' if engine else ''} in {data}")
    predicted = predict_clips(model, clips)
    said = [(c, p) for c, p in zip(clips, predicted, strict=True) if c.label in words]
    voices = voice_records(data) if synthetic else recorded_voice_records(clips)
    result = breakdown([c for c, _ in said], [p for _, p in said], voices, words,
                       lambda v: str(v.get(group_by, "?")))
    text = format_breakdown(result, words, group_by)
    others = [p for c, p in zip(clips, predicted, strict=True) if c.label == UNKNOWN_LABEL]
    if others:
        taken = sum(p in words for p in others)
        text += (f"\n\n`_unknown_` clips (other words, sentences) taken for a command: {taken} "
                 f"of {len(others)} ({100 * taken / len(others):.1f}%, argmax)")
    return text
