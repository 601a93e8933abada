"""Shared test helpers: offline speech synthesis and test recordings."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile
from scipy.signal import resample_poly

from edge_node.audio.base import SAMPLE_RATE as RATE
from edge_node.audio.wav import write_wav as save_wav


def synthesise(text: str, engine: str, voice: str, out: Path) -> np.ndarray:
    """Speech from a Debian TTS engine as 16 kHz mono float32."""
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
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(seconds * RATE)).astype(np.float32)
    return x * np.float32(10 ** (dbfs / 20))


@pytest.fixture(scope="session")
def speech(tmp_path_factory):
    """speech(text, engine="flite", voice="slt") -> cached 16 kHz waveform."""
    cache: dict[tuple[str, str, str], np.ndarray] = {}
    folder = tmp_path_factory.mktemp("speech")

    def make(text: str, engine: str = "flite", voice: str = "slt") -> np.ndarray:
        key = (text, engine, voice)
        if key not in cache:
            cache[key] = synthesise(text, engine, voice, folder / f"{engine}-{voice}-{text}.wav")
        return cache[key]

    return make


@pytest.fixture(scope="session")
def command_recording(speech, tmp_path_factory):
    """A recording with commands at known times over low noise: (path, [(label, start, end)])."""
    words = [("stop", "flite", "slt"), ("go", "flite", "rms"), ("left", "flite", "awb"),
             ("yes", "flite", "slt")]
    parts, events, t = [noise(1.0, -55, 1)], [], 1.0
    for i, (word, engine, voice) in enumerate(words):
        clip = speech(word, engine, voice) * 0.5
        events.append((word, t, t + clip.size / RATE))
        parts += [clip, noise(2.5, -55, 10 + i)]
        t += clip.size / RATE + 2.5
    audio = np.concatenate(parts)
    audio += noise(audio.size / RATE, -60, 99)
    path = tmp_path_factory.mktemp("recording") / "commands.wav"
    return write_wav(path, audio), events
