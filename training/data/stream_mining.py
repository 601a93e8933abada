"""Training windows cut from a long synthetic recording: what the live node really hears.

A model trained only on isolated, centred words has never seen the windows a streaming
detector feeds it all day: the middle of a sentence, the tail of a word, a word that merely
sounds like a command ("upper", "start"), background noise with nothing in it. Those windows
are where false activations come from. This module renders a recording with `stream_synth`
using the TRAINING voices (the evaluation recording's voices stay held out), slides a 1 s
window over it and labels each position from the recording's event list:

- no speech in the window: `_silence_`;
- only non-command speech (other words, sentences) of one voice: `_unknown_`;
- one command word wholly inside and nothing else: that command (a positive in context);
- a command cut by the window's edge, or two voices: skipped (no honest label).

The windows are written as a dataset directory (`clips.csv` + WAVs, the `dataset_synth`
layout) that `kws-train train --data` mixes in like any other. Each window keeps the engine
and voice of its speech, so voice and leave-one-engine-out splits stay honest.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_node.audio.wav import read_wav_mono16k
from edge_node.features import CLIP_SAMPLES, SAMPLE_RATE
from training.data.dataset import STREAM_WINDOWS
from training.data.dataset_synth import CSV_FIELDS, label_dir, write_clips_csv
from training.data.vocab import COMMANDS, SILENCE_LABEL, UNKNOWN_LABEL
from training.tts.synthesis import write_wav

log = logging.getLogger(__name__)

STEP_S = 0.1
"""Grid of window starts, the node's default hop."""


@dataclass(frozen=True)
class MiningPlan:
    """How many windows of each kind to keep from one recording."""

    unknown: int = 8000
    commands: int = 3000
    silence: int = 1000


@dataclass(frozen=True)
class Window:
    start: int
    label: str
    engine: str
    voice: str
    text: str


def label_windows(events: Sequence[dict], duration_s: float,
                  commands: Sequence[str] = COMMANDS) -> list[Window]:
    """Every grid position of a 1 s window with its label (or none, when ambiguous)."""
    starts = np.arange(0.0, duration_s - 1.0, STEP_S)
    ev_start = np.array([e["start_s"] for e in events])
    ev_end = np.array([e["end_s"] for e in events])
    windows = []
    for s in starts:
        e = s + 1.0
        overlapping = np.nonzero((ev_start < e) & (ev_end > s))[0]
        sample = int(round(s * SAMPLE_RATE))
        if overlapping.size == 0:
            windows.append(Window(sample, SILENCE_LABEL, "noise", "stream-noise", ""))
            continue
        hits = [events[i] for i in overlapping]
        if len({h["voice"] for h in hits}) > 1:
            continue
        first = hits[0]
        is_command = [h["label"] in commands for h in hits]
        if not any(is_command):
            windows.append(Window(sample, UNKNOWN_LABEL, first["engine"], first["voice"],
                                  " / ".join(h["text"] for h in hits)))
        elif len(hits) == 1 and first["start_s"] >= s and first["end_s"] <= e:
            windows.append(Window(sample, first["label"], first["engine"], first["voice"],
                                  first["text"]))
    return windows


def choose(windows: list[Window], plan: MiningPlan, seed: int) -> list[Window]:
    """A random sample of each kind (all of a kind when it has fewer)."""
    rng = np.random.default_rng(seed)
    wanted = {UNKNOWN_LABEL: plan.unknown, SILENCE_LABEL: plan.silence}
    by_kind: dict[str, list[Window]] = {}
    for w in windows:
        kind = w.label if w.label in wanted else "command"
        by_kind.setdefault(kind, []).append(w)
    wanted["command"] = plan.commands
    chosen: list[Window] = []
    for kind, pool in sorted(by_kind.items()):
        take = min(len(pool), wanted[kind])
        chosen += [pool[i] for i in sorted(rng.choice(len(pool), take, replace=False))]
    return sorted(chosen, key=lambda w: w.start)


def hard_negatives(windows: Sequence[Window], detections: Sequence[dict],
                   events: Sequence[dict], commands: Sequence[str] = COMMANDS,
                   per_detection: int = 5, tolerance_s: float = 1.5) -> list[Window]:
    """The non-command windows a model fired on: its false activations, as training data.

    A detection that names no command spoken between its event's start and `tolerance_s`
    after its end (the streaming score's rule) is false; the `per_detection` windows ending at
    and just before it (the detector averages the last few) become training windows, if they
    are labelled `_unknown_` or `_silence_`.
    """
    by_start = {w.start: w for w in windows}
    step = int(round(STEP_S * SAMPLE_RATE))
    chosen: dict[int, Window] = {}
    for det in detections:
        t = float(det["time_s"])
        if any(e["label"] == det["label"] and e["start_s"] <= t <= e["end_s"] + tolerance_s
               for e in events if e["label"] in commands):
            continue
        end = int(round(t / STEP_S)) * step
        for k in range(per_detection):
            window = by_start.get(end - CLIP_SAMPLES - k * step)
            if window is not None and window.label in (UNKNOWN_LABEL, SILENCE_LABEL):
                chosen[window.start] = window
    return [chosen[k] for k in sorted(chosen)]


def write_windows(audio: np.ndarray, windows: Sequence[Window], out: Path,
                  info: dict) -> dict[str, int]:
    """Windows as a train-only dataset directory (`clips.csv` + WAVs, `dataset.json`)."""
    out = Path(out)
    rows, counts = [], {}
    for w in windows:
        # Named by where the window starts in the recording (ms), to find it again.
        start_ms = w.start * 1000 // SAMPLE_RATE
        rel = Path(w.engine) / label_dir(w.label) / f"stream-{start_ms:08d}.wav"
        (out / rel.parent).mkdir(parents=True, exist_ok=True)
        write_wav(out / rel, audio[w.start : w.start + CLIP_SAMPLES])
        rows.append({"path": rel.as_posix(), "label": w.label, "engine": w.engine,
                     "voice": w.voice, "text": w.text, "scored": "0"})
        counts[w.label] = counts.get(w.label, 0) + 1
    out.mkdir(parents=True, exist_ok=True)
    write_clips_csv(out / "clips.csv", rows)
    (out / "dataset.json").write_text(json.dumps({
        "kind": STREAM_WINDOWS, **info, "counts": counts, "fields": list(CSV_FIELDS)},
        indent=1))
    log.info("wrote %d windows to %s: %s", len(rows), out, counts)
    return counts


def _load(recording: Path) -> tuple[np.ndarray, dict]:
    return read_wav_mono16k(recording), json.loads(Path(recording).with_suffix(".json").read_text())


def mine(recording: Path, out: Path, plan: MiningPlan | None = None, seed: int = 1,
         commands: Sequence[str] = COMMANDS) -> dict[str, int]:
    """Write the chosen windows of `recording` (+ its `.json` events) as a dataset in `out`."""
    audio, meta = _load(recording)
    windows = choose(label_windows(meta["events"], len(audio) / SAMPLE_RATE, commands),
                     plan or MiningPlan(), seed)
    return write_windows(audio, windows, out, {"source": str(recording), "seed": seed})


def mine_hard(recording: Path, detections: Sequence[dict], out: Path,
              commands: Sequence[str] = COMMANDS) -> dict[str, int]:
    """Write the windows behind a model's false activations on `recording` to `out`."""
    audio, meta = _load(recording)
    windows = label_windows(meta["events"], len(audio) / SAMPLE_RATE, commands)
    hard = hard_negatives(windows, detections, meta["events"], commands)
    return write_windows(audio, hard, out, {"source": str(recording), "hard_negatives": True})
