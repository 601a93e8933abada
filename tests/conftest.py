"""Fixtures shared by the test modules; the helpers they use live in tests/support."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.audio_signals import RATE, noise, synthesise, write_wav


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

