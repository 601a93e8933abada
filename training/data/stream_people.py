"""Long recordings of REAL people for streaming evaluation: recorded clips of held-out
speakers (commands and other words, each said on its own) and held-out real talk, over held-out
real household noise, with the event list `training.evaluation.metrics.streaming_scores` reads.

Two kinds: `people` (commands, other words and talk between them: recall and false activations
per hour) and `talk` (only continuous talk, every held-out file whole: false activations per
hour on the conversation, reading and TV-like speech a node hears all day, where a command
word inside a sentence is talk, not a command).

These functions write the WAV and return its event list; `training.data.make.people_recording`
writes that list beside it as JSON, with the licences of what the recording is made of.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_node.features import SAMPLE_RATE
from training.data.audio_files import read_audio
from training.data.augment import speech_span
from training.data.dataset import Clip
from training.data.noise import rms_dbfs
from training.data.real_speech import TALK_ENGINE, Recording
from training.data.vocab import UNKNOWN_LABEL
from training.tts.synthesis import write_wav

log = logging.getLogger(__name__)

_XFADE_S = 0.5
_MAX_PEAK = 0.9
NOISE_DBFS = (-62.0, -38.0)
"""RMS level range of each background segment (a quiet room to a busy kitchen)."""
SNR_DB = (5.0, 30.0)
"""Speech level over the background under it, as in the synthetic recordings."""


def background(noises: Sequence[np.ndarray], duration_s: float,
               rng: np.random.Generator) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Cross-faded 5-60 s excerpts of the noise recordings at random levels, over a faint
    microphone floor (digital silence never reaches a real node)."""
    n = int(round(duration_s * SAMPLE_RATE))
    x = rng.standard_normal(n) * 10 ** (-75 / 20)
    segments: list[dict[str, Any]] = []
    t = 0.0
    while t < duration_s:
        seg = float(rng.uniform(5.0, 60.0))
        which = int(rng.integers(len(noises)))
        source = noises[which]
        length = int((seg + _XFADE_S) * SAMPLE_RATE)
        if source.size < length:
            source = np.tile(source, length // max(1, source.size) + 1)
        start = int(rng.integers(0, source.size - length + 1))
        y = source[start:start + length].astype(np.float64)
        level = float(rng.uniform(*NOISE_DBFS))
        y *= 10 ** ((level - rms_dbfs(y)) / 20) if np.any(y) else 0.0
        ramp = int(_XFADE_S * SAMPLE_RATE)
        y[:ramp] *= np.linspace(0.0, 1.0, ramp) if t > 0 else 1.0
        y[-ramp:] *= np.linspace(1.0, 0.0, ramp)
        at = int(round(t * SAMPLE_RATE))
        y = y[:max(0, n - at)]
        x[at:at + len(y)] += y
        segments.append({"noise": which, "start_s": round(t, 3),
                         "end_s": round(min(t + seg, duration_s), 3), "level_dbfs": level})
        t += seg
    return x, segments


def _place(mix: np.ndarray, bg: np.ndarray, audio: np.ndarray, at: int,
           rng: np.random.Generator) -> float:
    """Add `audio` at sample `at` at a random SNR over the background there; its gain."""
    noise_db = rms_dbfs(bg[at:at + audio.size])
    gain_db = noise_db + float(rng.uniform(*SNR_DB)) - rms_dbfs(audio)
    gain = min(10 ** (gain_db / 20), _MAX_PEAK / max(1e-6, float(np.max(np.abs(audio)))))
    mix[at:at + audio.size] += gain * audio
    return gain


def make_people_recording(out_wav: Path, clips: Sequence[Clip], talk: Sequence[Recording],
                          noises: Sequence[np.ndarray], commands: Sequence[str], *,
                          duration_s: float, seed: int, talk_share: float = 0.2,
                          talk_seconds: tuple[float, float] = (2.0, 8.0),
                          gap_s: tuple[float, float] = (1.0, 6.0)) -> dict[str, Any]:
    """Held-out people's clips (each used once, commands and other words in their share of
    `clips`) and excerpts of held-out talk (`talk_share` of the items), over `noises`."""
    rng = np.random.default_rng([seed, 5151])
    bg, segments = background(noises, duration_s, rng)
    mix = bg.copy()
    order = [clips[i] for i in rng.permutation(len(clips))]
    talk_audio: dict[Path, np.ndarray] = {}
    events: list[dict[str, Any]] = []
    t = float(rng.uniform(*gap_s))
    while t < duration_s - 10.0 and (order or talk):
        at = int(t * SAMPLE_RATE)
        if talk and (rng.random() < talk_share or not order):
            rec = talk[int(rng.integers(len(talk)))]
            audio = talk_audio.setdefault(rec.path, read_audio(rec.path))
            length = min(audio.size, int(rng.uniform(*talk_seconds) * SAMPLE_RATE))
            start = int(rng.integers(0, audio.size - length + 1))
            audio = audio[start:start + length]
            event = {"label": UNKNOWN_LABEL, "kind": "sentence", "text": rec.corpus,
                     "engine": TALK_ENGINE, "voice": rec.speaker, "file": rec.path.name}
            span = (0, audio.size)
        else:
            clip = order.pop()
            audio = read_audio(clip.path)
            span = speech_span(audio)
            audio = audio[span[0]:span[1]]
            event = {"label": clip.label, "kind": "word", "text": clip.text,
                     "engine": clip.engine, "voice": clip.voice}
            span = (0, audio.size)
        if at + audio.size >= mix.size - SAMPLE_RATE:
            break
        _place(mix, bg, audio, at, rng)
        events.append({**event, "start_s": round(at / SAMPLE_RATE, 4),
                       "end_s": round((at + span[1]) / SAMPLE_RATE, 4)})
        t = (at + audio.size) / SAMPLE_RATE + float(rng.uniform(*gap_s))
    return _write(out_wav, mix, segments, events, duration_s, seed, commands, "people")


def make_talk_recording(out_wav: Path, talk: Sequence[Recording], noises: Sequence[np.ndarray],
                        commands: Sequence[str], *, seed: int,
                        gap_s: tuple[float, float] = (0.3, 2.0)) -> dict[str, Any]:
    """Every held-out talk file once, whole, in random order, over `noises`."""
    rng = np.random.default_rng([seed, 6161])
    audios = [read_audio(r.path) for r in talk]
    order = rng.permutation(len(talk))
    duration_s = (sum(a.size for a in audios) / SAMPLE_RATE + len(talk) * sum(gap_s) / 2 * 1.1
                  + 2.0)
    bg, segments = background(noises, duration_s, rng)
    mix = bg.copy()
    events: list[dict[str, Any]] = []
    at = SAMPLE_RATE
    for i in order:
        audio = audios[i][: max(0, mix.size - at - SAMPLE_RATE)]
        if audio.size < SAMPLE_RATE // 2:
            break
        _place(mix, bg, audio, at, rng)
        events.append({"label": UNKNOWN_LABEL, "kind": "sentence", "text": talk[i].corpus,
                       "engine": TALK_ENGINE, "voice": talk[i].speaker, "file": talk[i].path.name,
                       "start_s": round(at / SAMPLE_RATE, 4),
                       "end_s": round((at + audio.size) / SAMPLE_RATE, 4)})
        at += audio.size + int(rng.uniform(*gap_s) * SAMPLE_RATE)
    return _write(out_wav, mix, segments, events, duration_s, seed, commands, "talk")


def _write(out_wav: Path, mix: np.ndarray, segments: list[dict[str, Any]],
           events: list[dict[str, Any]], duration_s: float, seed: int,
           commands: Sequence[str], kind: str) -> dict[str, Any]:
    out_wav = Path(out_wav)
    out_wav.parent.mkdir(parents=True, exist_ok=True)
    write_wav(out_wav, np.clip(mix, -1.0, 1.0).astype(np.float32))
    meta = {"sample_rate": SAMPLE_RATE, "duration_s": duration_s, "seed": seed, "kind": kind,
            "engines": sorted({e["engine"] for e in events}), "words": list(commands),
            "speakers": len({e["voice"] for e in events}), "events": events,
            "background": segments}
    log.info("wrote %s: %.1f min, %d events (%d commands) by %d speakers", out_wav,
             duration_s / 60, len(events), sum(e["label"] in commands for e in events),
             meta["speakers"])
    return meta
