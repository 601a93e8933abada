"""Render text with a `Voice` to 16 kHz mono float32 clips, with shared post-processing.

Post-processing gives every engine the same extra speaker variety: a resampling factor
(vocal-tract length: formants and f0 move together), a tempo change so words last like
human words (synthetic voices say a word in ~0.3 s, people in ~0.5 s), a mild channel
filter, silence trimming and a random peak level.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal
from scipy.io import wavfile

from edge_node.audio.base import SAMPLE_RATE
from training.tts.engines import ENGINES, Voice, scratch_dir

CAL_WORD = "seven"  # rendered once per voice to measure its native speaking rate
WORD_DUR_S = (0.25, 0.9)  # target duration range for single words
MAX_WORD_S = 1.0  # hard limit for command clips after trimming
MAX_SENTENCE_S = 4.0
TEMPO_LIMITS = (0.35, 3.0)
PEAK_DBFS = (-18.0, -1.0)


class SynthesisError(RuntimeError):
    """An engine produced unusable audio (empty or silent)."""


@dataclass(frozen=True)
class ClipSpec:
    """One clip to render: text, "word" or "sentence", and its private RNG seed."""

    text: str
    kind: str
    seed: tuple[int, ...]


def trim_silence(
    x: np.ndarray, sr: int, rel_db: float = -45.0, floor_db: float = -75.0, pad_s: float = 0.02
) -> np.ndarray:
    """Cut leading/trailing audio more than `rel_db` below the loudest 10 ms frame.

    Levels are measured above 60 Hz: some engines pad with low-frequency rumble that
    would otherwise count as speech and distort the tempo calculation.
    """
    det = signal.sosfilt(signal.butter(2, 60.0, "highpass", fs=sr, output="sos"), x)
    frame = max(1, int(0.01 * sr))
    n = len(x) // frame
    if n == 0:
        return x[:0]
    rms = np.sqrt(np.mean(det[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-20)
    db = 20.0 * np.log10(rms)
    active = np.flatnonzero(db > max(float(db.max()) + rel_db, floor_db))
    if active.size == 0:
        return x[:0]
    pad = int(pad_s * sr)
    start = max(0, active[0] * frame - pad)
    end = min(len(x), (active[-1] + 1) * frame + pad)
    return x[start:end]


def sox_transform(
    x: np.ndarray, sr: int, *, vtl: float = 1.0, tempo: float = 1.0, sr_out: int = SAMPLE_RATE
) -> np.ndarray:
    """Resample-based vocal-tract change (x`vtl`), WSOLA tempo (x`tempo`), resample to sr_out.

    Declaring the input rate as sr*vtl is exactly a speed change: pitch and formants rise by
    `vtl`, duration shrinks by `vtl`; `tempo` then changes duration only.
    """
    raw = ["-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1"]
    cmd = [
        "sox",
        "-D",
        "-R",
        "-V1",
        *raw,
        "-r",
        f"{sr * vtl:.3f}",
        "-",
        *raw,
        "-r",
        str(sr_out),
        "-",
        "tempo",
        "-s",
        f"{tempo:.5f}",
        "rate",
        "-v",
        str(sr_out),
    ]
    res = subprocess.run(
        cmd,
        input=np.ascontiguousarray(x, np.float32).tobytes(),
        capture_output=True,
        check=True,
        timeout=120,
    )
    return np.frombuffer(res.stdout, dtype=np.float32).copy()


def channel_filter(x: np.ndarray, voice: Voice, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Per-voice microphone/channel band limits."""
    sos = signal.butter(2, voice.highpass_hz, "highpass", fs=sr, output="sos")
    if voice.lowpass_hz > 0:
        sos = np.vstack([sos, signal.butter(2, voice.lowpass_hz, "lowpass", fs=sr, output="sos")])
    return signal.sosfilt(sos, x).astype(np.float32)


def _target_duration(kind: str, dur: float) -> float:
    if kind == "word":
        return float(np.clip(dur, *WORD_DUR_S))
    return min(dur, MAX_SENTENCE_S)


def _finish(
    raw: np.ndarray, sr: int, voice: Voice, spec: ClipSpec, base_tempo: float
) -> np.ndarray:
    rng = np.random.default_rng([*spec.seed, 0x9057])  # decorrelated from text choice
    vtl = voice.vtl * float(rng.uniform(0.985, 1.015))
    x = trim_silence(raw, sr)
    if len(x) < int(0.03 * sr):
        raise SynthesisError(f"{voice.voice_id}: no speech for {spec.text!r}")
    native = len(x) / sr
    wanted = _target_duration(spec.kind, native / (vtl * base_tempo * rng.uniform(0.88, 1.12)))
    tempo = float(np.clip(native / (vtl * wanted), *TEMPO_LIMITS))
    y = trim_silence(channel_filter(sox_transform(x, sr, vtl=vtl, tempo=tempo), voice), SAMPLE_RATE)
    if spec.kind == "word" and len(y) > MAX_WORD_S * SAMPLE_RATE:
        y = trim_silence(
            sox_transform(y, SAMPLE_RATE, tempo=len(y) / (0.95 * SAMPLE_RATE)), SAMPLE_RATE
        )[: int(MAX_WORD_S * SAMPLE_RATE)]
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if peak < 1e-4:
        raise SynthesisError(f"{voice.voice_id}: silent output for {spec.text!r}")
    level = 10.0 ** (float(rng.uniform(*PEAK_DBFS)) / 20.0)
    return (y * (level / peak)).astype(np.float32)


def render_clips(
    voice: Voice, specs: Sequence[ClipSpec], scratch_root: Path | None = None
) -> list[np.ndarray]:
    """Render all `specs` with one voice (batched: festival start-up is paid once)."""
    own = scratch_root is None
    root = Path(tempfile.mkdtemp(prefix="kws-synth-")) if own else Path(scratch_root)
    work = scratch_dir(root)
    try:
        raws = ENGINES[voice.engine].render_raw(voice, [CAL_WORD, *(s.text for s in specs)], work)
        cal = trim_silence(*raws[0])
        cal_native = max(len(cal) / raws[0][1], 0.1)
        base_tempo = cal_native / (voice.vtl * voice.cal_dur)
        return [
            _finish(x, sr, voice, s, base_tempo) for (x, sr), s in zip(raws[1:], specs, strict=True)
        ]
    finally:
        shutil.rmtree(root if own else work, ignore_errors=True)


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float [-1, 1] -> int16 with clipping (deterministic, no dither)."""
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def write_wav(path: Path, x: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    """16-bit mono WAV, creating parent directories."""
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, sr, to_int16(x))
