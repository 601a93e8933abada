"""Real continuous talk and household noise (`shared/real_speech` layout): what a node in a
living room hears all day, for training what is NOT a command and for measuring false
activations on talk it never heard.

The corpus's `MANIFEST.csv` lists every file with its kind (speech / noise), corpus, speaker,
length and licence. Splits are by speaker (a corpus without speaker ids, such as the spoken
coffee orders, by file), so a held-out talker is never trained on.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_node.features import CLIP_SAMPLES, SAMPLE_RATE
from training.data.audio_files import read_audio
from training.data.dataset import STREAM_WINDOWS, is_held_out
from training.data.dataset_synth import CSV_FIELDS, write_clips_csv
from training.data.vocab import SILENCE_LABEL, UNKNOWN_LABEL
from training.tts.synthesis import write_wav

log = logging.getLogger(__name__)

TALK_ENGINE = "talk"
"""`Clip.engine` of windows cut from real talk."""
REAL_NOISE_ENGINE = "real-noise"
"""`Clip.engine` of windows cut from real household noise."""
UNNAMED_SPEAKERS = frozenset({"", "mixed-50plus"})
"""Manifest speaker fields that name no single person: such files are split one by one."""


@dataclass(frozen=True)
class Recording:
    """One file of the corpus."""

    path: Path
    kind: str
    """`speech` or `noise`."""
    corpus: str
    speaker: str
    """Who talks: `corpus:speaker`, or `corpus:file` where the corpus names no speaker."""
    seconds: float
    licence: str


def load_corpus(root: Path) -> list[Recording]:
    """Every file the corpus's MANIFEST.csv lists that exists under `root`."""
    root = Path(root)
    manifest = root / "MANIFEST.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found: expected the shared/real_speech layout")
    recordings = []
    with manifest.open(newline="") as fh:
        for row in csv.DictReader(fh):
            path = root / row["file"]
            if not path.is_file():
                continue
            who = row["speaker"] if row["speaker"] not in UNNAMED_SPEAKERS else path.stem
            recordings.append(Recording(path, row["kind"], row["corpus"],
                                        f'{row["corpus"]}:{who}', float(row["seconds"] or 0),
                                        row["licence"]))
    if not recordings:
        raise FileNotFoundError(f"no recordings of {manifest} found under {root}")
    return recordings


@dataclass(frozen=True)
class CorpusSplit:
    """Training and evaluation parts of the corpus, disjoint by speaker (noise by file)."""

    train_talk: list[Recording]
    eval_talk: list[Recording]
    train_noise: list[Recording]
    eval_noise: list[Recording]


def split_corpus(recordings: Sequence[Recording], held_out: float = 0.3) -> CorpusSplit:
    talk = [r for r in recordings if r.kind == "speech"]
    noise = [r for r in recordings if r.kind == "noise"]
    return CorpusSplit(
        [r for r in talk if not is_held_out(r.speaker, held_out)],
        [r for r in talk if is_held_out(r.speaker, held_out)],
        [r for r in noise if not is_held_out(r.path.name, held_out)],
        [r for r in noise if is_held_out(r.path.name, held_out)],
    )


def read_all(recordings: Sequence[Recording]) -> list[np.ndarray]:
    return [read_audio(r.path) for r in recordings]


def talk_windows(recordings: Sequence[Recording], out: Path, count: int, seed: int) -> int:
    """Write `count` 1 s windows of talk, at random offsets as the live detector's hop lands
    on them (mid-word, mid-sentence, a command word inside a sentence), as a train-only
    `_unknown_` dataset (`clips.csv` + WAVs). Longer recordings give more windows, in
    proportion to their length."""
    return _windows(recordings, out, count, (seed, 4242), UNKNOWN_LABEL, TALK_ENGINE,
                    "real talk")


def noise_windows(recordings: Sequence[Recording], out: Path, count: int, seed: int) -> int:
    """Write `count` 1 s windows of household noise and music, as a train-only `_silence_`
    dataset: real noise heard alone, which the synthetic `_silence_` clips (hiss, hum, fans)
    never are. Without them the classifier took a running tap or a clatter for "up"."""
    return _windows(recordings, out, count, (seed, 4343), SILENCE_LABEL, REAL_NOISE_ENGINE,
                    "real noise")


def _windows(recordings: Sequence[Recording], out: Path, count: int, seed: tuple[int, int],
             label: str, engine: str, source: str) -> int:
    """`count` 1 s windows at random offsets of `recordings` (in proportion to their
    length), written as a train-only dataset of `label` clips; `seed`: (recipe seed, salt)."""
    out = Path(out)
    rng = np.random.default_rng(list(seed))
    long_enough = [r for r in recordings if r.seconds * SAMPLE_RATE > CLIP_SAMPLES]
    if not long_enough:
        raise ValueError(f"no {source} recording is longer than one window")
    weights = np.array([r.seconds for r in long_enough])
    picks = np.bincount(rng.choice(len(long_enough), size=count, p=weights / weights.sum()),
                        minlength=len(long_enough))
    rows = []
    folder = out / engine / label
    folder.mkdir(parents=True, exist_ok=True)
    for index, (recording, n) in enumerate(zip(long_enough, picks, strict=True)):
        if not n:
            continue
        audio = read_audio(recording.path)
        starts = rng.integers(0, max(1, audio.size - CLIP_SAMPLES), size=n)
        for start in sorted(int(s) for s in starts):
            rel = f"{engine}/{label}/{index:04d}-{start * 1000 // SAMPLE_RATE:07d}.wav"
            write_wav(out / rel, audio[start : start + CLIP_SAMPLES])
            rows.append({"path": rel, "label": label, "engine": engine,
                         "voice": recording.speaker, "text": recording.corpus, "scored": "0"})
    write_clips_csv(out / "clips.csv", rows)
    (out / "dataset.json").write_text(json.dumps({
        "kind": STREAM_WINDOWS, "source": source, "seed": seed[0], "counts": {label: len(rows)},
        "speakers": len({r.speaker for r in long_enough}), "fields": list(CSV_FIELDS)}, indent=1))
    log.info("wrote %d %s windows of %d recordings to %s", len(rows), source, len(long_enough),
             out)
    return len(rows)


def licences(recordings: Sequence[Recording]) -> list[str]:
    """The attribution lines a model trained on these files carries (CC BY asks for them)."""
    return sorted({f"{r.corpus}: {r.licence}" for r in recordings})
