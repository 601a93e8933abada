"""Test audio made at test time: synthetic speech-like signals, noise, and real speech from the
Debian TTS engines (espeak-ng, flite), as the tests and the MQTT benches need it."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile
from scipy.signal import resample_poly

from edge_node.audio.base import SAMPLE_RATE as RATE
from edge_node.audio.wav import write_wav as save_wav

REPO = Path(__file__).resolve().parents[2]


def need_tool(name: str) -> str:
    """Path of a Debian tool, skipping the test only when it is really not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def speechlike(rate: int, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """Voiced-speech stand-in: gliding harmonics with syllable envelope plus breath noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    f0 = 120 + 60 * np.sin(2 * np.pi * 1.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12) if k * 180 < rate / 2 * 0.9)
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 3 * t)) * np.minimum(1, 10 * t)
    x = voiced * envelope + 0.05 * rng.standard_normal(len(t))
    return (0.5 * x / np.abs(x).max()).astype(np.float64)


def to_16k(x: np.ndarray, rate: int) -> np.ndarray:
    """One-shot reference conversion to 16 kHz."""
    g = math.gcd(16000, rate)
    return resample_poly(x, 16000 // g, rate // g) if rate != 16000 else x


def write_pcm_wav(path: Path, x: np.ndarray, rate: int, dtype: str) -> None:
    """Write float [-1, 1] samples (mono or (n, ch)) as a WAV of the given numpy dtype."""
    if dtype == "int16":
        data = np.round(x * 32767).astype(np.int16)
    elif dtype == "int32":
        data = np.round(x * (2**31 - 1)).astype(np.int32)
    else:
        data = x.astype(np.float32)
    wavfile.write(str(path), rate, data)


def espeak_word(tmp: Path, word: str = "stop", rate: int = 16000) -> np.ndarray:
    """Real synthetic speech for ``word`` at ``rate`` as float64 (sox does the resampling)."""
    espeak, sox = need_tool("espeak-ng"), need_tool("sox")
    raw = tmp / f"espeak_{word}.wav"
    subprocess.run([espeak, "-w", str(raw), word], check=True, capture_output=True)
    out = tmp / f"espeak_{word}_{rate}.wav"
    subprocess.run(
        [sox, str(raw), "-e", "floating-point", "-b", "32", "-r", str(rate), str(out)],
        check=True,
        capture_output=True,
    )
    sr, data = wavfile.read(str(out))
    assert sr == rate
    return data.astype(np.float64)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised correlation at zero lag of two equally long signals."""
    a = a - a.mean()
    b = b - b.mean()
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def best_correlation(x: np.ndarray, ref: np.ndarray, max_lag: int = 80) -> tuple[float, int]:
    """Highest normalised correlation of ``ref`` against ``x`` within +-max_lag samples."""
    best = (-1.0, 0)
    for lag in range(-max_lag, max_lag + 1):
        start = max_lag + lag
        seg = x[start : start + len(ref)]
        if len(seg) == len(ref):
            best = max(best, (correlation(seg, ref), lag))
    return best


def synthesise(text: str, engine: str, voice: str, out: Path) -> np.ndarray:
    """Speech from a Debian TTS engine as 16 kHz mono float32, trimmed to its loud part."""
    raw = out.with_suffix(".raw.wav")
    if engine == "flite":
        cmd = ["flite", "-voice", voice, "-t", text, "-o", str(raw)]
    elif engine == "espeak":
        cmd = ["espeak-ng", "-v", voice, "-w", str(raw), text]
    else:
        raise ValueError(engine)
    if shutil.which(cmd[0]) is None:
        pytest.skip(f"{cmd[0]} is not installed (scripts/bootstrap.sh dev installs it)")
    subprocess.run(cmd, check=True, capture_output=True)
    rate, data = wavfile.read(raw)
    x = data.astype(np.float32) / 32768.0
    if rate != RATE:
        x = resample_poly(x, RATE, rate).astype(np.float32)
    loud = np.flatnonzero(np.abs(x) > 0.02)
    return x[loud[0] : loud[-1] + 1] if loud.size else x


def write_wav(path: Path, x: np.ndarray, rate: int = RATE) -> Path:
    """The node's own WAV writer, returning the path for convenience in fixtures."""
    save_wav(path, x, rate)
    return path


def noise(seconds: float, dbfs: float, seed: int = 0) -> np.ndarray:
    """Reproducible white noise at `dbfs` RMS, the background under spoken test commands."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(seconds * RATE)).astype(np.float32)
    return x * np.float32(10 ** (dbfs / 20))


def person_saying(label: str, nth: int = 0) -> np.ndarray:
    """A real person (held out from every bundled model's training) saying `label` on its own:
    the `nth` such word of the bundled example recording, cut at its event's bounds with
    50 ms of the room around it."""
    from edge_node.audio.wav import read_wav_mono16k
    from edge_node.config import DEFAULT_EXAMPLE

    events = json.loads(DEFAULT_EXAMPLE.with_suffix(".json").read_text())["events"]
    event = [e for e in events if e["label"] == label and e["kind"] == "word"][nth]
    audio = read_wav_mono16k(DEFAULT_EXAMPLE)
    start = max(0, int((event["start_s"] - 0.05) * RATE))
    return audio[start:int((event["end_s"] + 0.05) * RATE)]
