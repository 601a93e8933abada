"""Long synthetic recordings with known keyword times, for streaming-detector evaluation.

Background noise changes kind and level over time; commands, other words and sentences
are mixed in at random SNR, never closer than `min_gap_s`. Voices come from a separate
voice seed, so none of them appears in a dataset built with the training seed.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.data.noise import LEVELS_DBFS, NOISE_KINDS, make_noise, rms_dbfs
from training.data.vocab import (
    COMMANDS,
    UNKNOWN_LABEL,
    near_misses,
    pick_unknown_word,
    pick_variant,
    sentence_variants,
    text_variants,
    unknown_material,
)
from training.tts.engines import Voice, make_voices, require_engines
from training.tts.synthesis import SAMPLE_RATE, ClipSpec, render_clips, write_wav

VOICE_SEED_OFFSET = 1_000_000
_XFADE_S = 0.5
_MAX_PEAK = 0.85  # speech peak limit; leaves headroom for the background (< -19 dBFS peak)


def _background(duration_s: float, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """Cross-faded noise segments of 5-60 s with changing kind and level."""
    n = int(round(duration_s * SAMPLE_RATE))
    x = np.zeros(n)
    segments: list[dict[str, Any]] = []
    t = 0.0
    kinds = [k for k in NOISE_KINDS if k != "digital_silence"]
    while t < duration_s:
        seg = float(rng.uniform(5.0, 60.0))
        kind = "digital_silence" if rng.random() < 0.05 else kinds[int(rng.integers(len(kinds)))]
        level = float(rng.uniform(*LEVELS_DBFS[kind])) if kind in LEVELS_DBFS else 0.0
        y = make_noise(kind, seg + _XFADE_S, rng, level_dbfs=level).astype(np.float64)
        ramp = min(len(y), int(_XFADE_S * SAMPLE_RATE))
        y[:ramp] *= np.linspace(0.0, 1.0, ramp) if t > 0 else 1.0
        y[len(y) - ramp :] *= np.linspace(1.0, 0.0, ramp)
        start = int(round(t * SAMPLE_RATE))
        y = y[: max(0, n - start)]
        x[start : start + len(y)] += y
        end = round(min(t + seg, duration_s), 3)
        level_out = round(level, 1) if kind in LEVELS_DBFS else None
        segments.append(
            {"kind": kind, "start_s": round(t, 3), "end_s": end, "level_dbfs": level_out}
        )
        t += seg
    return x, segments


def _plan_items(
    n: int, first: int, rng: np.random.Generator, voices: Sequence[Voice], words: Sequence[str],
    command_share: float, sentence_share: float, seed: int, near_miss_share: float = 0.0,
) -> list[tuple[Voice, ClipSpec, str]]:  # fmt: skip
    """Random (voice, text, label) items; item k's clip seed depends only on (seed, k)."""
    unk_words, unk_sentences = unknown_material(words)
    close = near_misses(words)
    items = []
    for k in range(first, first + n):
        voice = voices[int(rng.integers(len(voices)))]
        u = rng.random()
        seed_t = (seed, zlib.crc32(b"stream"), k)
        if u < command_share:
            label = words[int(rng.integers(len(words)))]
            spec = ClipSpec(pick_variant(text_variants(label), rng), "word", seed_t)
        elif u < command_share + sentence_share and unk_sentences:
            label, s = UNKNOWN_LABEL, unk_sentences[int(rng.integers(len(unk_sentences)))]
            spec = ClipSpec(pick_variant(sentence_variants(s), rng), "sentence", seed_t)
        else:
            label, w = UNKNOWN_LABEL, pick_unknown_word(unk_words, close, near_miss_share, rng)
            spec = ClipSpec(pick_variant(text_variants(w), rng), "word", seed_t)
        items.append((voice, spec, label))
    return items


def _render_group(args: tuple[Voice, list[ClipSpec]]) -> list[np.ndarray]:
    return render_clips(*args)


def _render(items: list[tuple[Voice, ClipSpec, str]], workers: int) -> list[np.ndarray]:
    """Render grouped by voice (one engine start per voice), in item order."""
    groups: dict[str, list[int]] = {}
    for i, (voice, _, _) in enumerate(items):
        groups.setdefault(voice.voice_id, []).append(i)
    tasks = [(items[idx[0]][0], [items[i][1] for i in idx]) for idx in groups.values()]
    if workers > 1:
        with mp.get_context("spawn").Pool(workers) as pool:
            results = pool.map(_render_group, tasks)
    else:
        results = [_render_group(t) for t in tasks]
    clips: list[np.ndarray] = [np.zeros(0, np.float32)] * len(items)
    for idx, res in zip(groups.values(), results, strict=True):
        for i, clip in zip(idx, res, strict=True):
            clips[i] = clip
    return clips


def make_stream_recording(
    out_wav: str | Path,
    out_events_json: str | Path,
    *,
    seed: int,
    duration_s: float = 600.0,
    engines: Sequence[str] = ("espeak", "flite", "festival"),
    words: Sequence[str] = COMMANDS,
    voice_seed: int | None = None,
    voices_per_engine: int = 8,
    min_gap_s: float = 1.5,
    max_gap_s: float = 8.0,
    snr_db: tuple[float, float] = (5.0, 30.0),
    command_share: float = 0.5,
    sentence_share: float = 0.2,
    near_miss_share: float = 0.0,
    workers: int = 1,
    voices: Sequence[Voice] | None = None,
) -> dict[str, Any]:
    """Write the recording (16 kHz int16) and its event list; return the JSON content.

    `voice_seed` defaults to seed + VOICE_SEED_OFFSET so stream speakers are held out.
    `near_miss_share` of the other words are near-misses of the commands (for mining hard
    negatives; evaluation recordings keep 0, every other word alike). `voices`, when given,
    are the only speakers (e.g. one person of a dataset), instead of drawn ones.
    """
    if voices:
        engines = tuple(dict.fromkeys(v.engine for v in voices))
    require_engines(engines)
    rng = np.random.default_rng([seed, zlib.crc32(b"stream")])
    vseed = seed + VOICE_SEED_OFFSET if voice_seed is None else voice_seed
    voices = list(voices) if voices else [v for e in engines
                                          for v in make_voices(e, voices_per_engine, vseed)]
    background, segments = _background(duration_s, rng)
    mix = background.copy()
    n_total = len(mix)
    events: list[dict[str, Any]] = []
    t = float(rng.uniform(0.5, min_gap_s + 0.5))
    batch = max(4, int(duration_s / ((min_gap_s + max_gap_s) / 2 + 0.6) * 1.2))
    planned = 0
    while t < duration_s - 1.0:
        items = _plan_items(batch, planned, rng, voices, words, command_share, sentence_share,
                            seed, near_miss_share)
        planned += batch
        for (voice, spec, label), clip in zip(items, _render(items, workers), strict=True):
            start = int(round(t * SAMPLE_RATE))
            if start + len(clip) > n_total - int(0.5 * SAMPLE_RATE):
                t = duration_s
                break
            noise_db = rms_dbfs(background[start : start + len(clip)])
            speech_db = rms_dbfs(clip)
            if np.isfinite(noise_db):
                gain_db = noise_db + float(rng.uniform(*snr_db)) - speech_db
            else:
                gain_db = float(rng.uniform(-25.0, -3.0)) - 20 * np.log10(np.max(np.abs(clip)))
            gain = min(10 ** (gain_db / 20), _MAX_PEAK / float(np.max(np.abs(clip))))
            mix[start : start + len(clip)] += gain * clip
            end = start + len(clip)
            actual = speech_db + 20 * np.log10(gain) - noise_db if np.isfinite(noise_db) else None
            events.append(
                {
                    "label": label,
                    "text": spec.text,
                    "engine": voice.engine,
                    "voice": voice.voice_id,
                    "kind": spec.kind,
                    "start_s": round(start / SAMPLE_RATE, 4),
                    "end_s": round(end / SAMPLE_RATE, 4),
                    "snr_db": None if actual is None else round(float(actual), 2),
                    "noise_dbfs": round(noise_db, 2) if np.isfinite(noise_db) else None,
                }
            )
            t = end / SAMPLE_RATE + float(rng.uniform(min_gap_s, max_gap_s))
            if t >= duration_s - 1.0:
                break
    write_wav(Path(out_wav), np.clip(mix, -1.0, 1.0).astype(np.float32))
    meta = {"sample_rate": SAMPLE_RATE, "duration_s": duration_s, "seed": seed,
            "voice_seed": vseed, "engines": list(engines), "words": list(words),
            "min_gap_s": min_gap_s, "near_miss_share": near_miss_share, "events": events,
            "background": segments}  # fmt: skip
    Path(out_events_json).write_text(json.dumps(meta, indent=1))
    return meta
