"""What every TTS engine shares: the `Voice` record, per-voice random draws, the `Engine` interface.

A `Voice` is an engine base voice plus randomly drawn parameters. Parameters are a pure
function of (engine, seed, index), so a voice id always means the same speaker and a
dataset can be regenerated bit-identically or split by voice.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zlib
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.io import wavfile

SPEAKER_KINDS: tuple[str, ...] = ("male", "female", "child")
_KIND_P = (0.40, 0.42, 0.18)  # female/child over-weighted: they were recognised worst
# Vocal-tract scale relative to an adult male, and f0 range (Hz), per speaker kind.
_TRACT = {"male": (0.90, 1.04), "female": (1.08, 1.20), "child": (1.20, 1.30)}
_F0 = {"male": (88.0, 155.0), "female": (155.0, 265.0), "child": (225.0, 330.0)}
_SUBPROCESS_TIMEOUT_S = 120

Rendered = list[tuple[np.ndarray, int]]  # (waveform float32, native sample rate) per text


@dataclass(frozen=True, eq=True)
class Voice:
    """One synthetic speaker: base voice, engine parameters and post-processing."""

    engine: str
    voice_id: str
    base: str
    kind: str
    f0_hz: float  # intended mean f0 after post-processing; 0 = set by a stock variant
    vtl: float  # resampling factor; >1 = shorter vocal tract (higher formants and f0)
    cal_dur: float  # target duration (s) of the calibration word: sets speaking rate
    highpass_hz: float
    lowpass_hz: float  # 0 = no low-pass
    synth: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain dict for dataset metadata."""
        return asdict(self)


def voice_rng(engine: str, seed: int, index: int) -> np.random.Generator:
    """Independent stream per voice, so voice i does not depend on how many were asked for."""
    return np.random.default_rng([seed, zlib.crc32(engine.encode()), index])


def common_draws(rng: np.random.Generator, base_tract: float) -> dict[str, Any]:
    """Speaker kind, vocal-tract factor, f0 and channel, shared by all engines."""
    kind = SPEAKER_KINDS[int(rng.choice(len(SPEAKER_KINDS), p=_KIND_P))]
    tract = float(rng.uniform(*_TRACT[kind]))
    f0 = float(rng.uniform(*_F0[kind]))
    lowpass = float(rng.uniform(3800.0, 7800.0)) if rng.random() < 0.6 else 0.0
    return {
        "kind": kind,
        "tract": tract,
        "vtl": round(tract / base_tract, 4),
        "f0": f0,
        "cal_dur": round(float(rng.uniform(0.4, 1.1)), 3),
        "highpass_hz": round(float(rng.uniform(40.0, 260.0)), 1),
        "lowpass_hz": round(lowpass, 1),
    }


def assemble_voice(
    engine: str, seed: int, index: int, base: str, c: dict[str, Any], id_prefix: str = "",
    **synth: Any,
) -> Voice:
    """Assemble a Voice; c["f0"] is 0 when the engine cannot set f0 (then unknown)."""
    return Voice(
        engine=engine,
        voice_id=f"{id_prefix or engine}-s{seed}-{index:04d}",
        base=base,
        kind=c["kind"],
        f0_hz=round(c["f0"], 1),
        vtl=c["vtl"],
        cal_dur=c["cal_dur"],
        highpass_hz=c["highpass_hz"],
        lowpass_hz=c["lowpass_hz"],
        synth=synth,
    )


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """WAV -> float32 mono in [-1, 1] and its sample rate."""
    sr, data = wavfile.read(path)
    x = data.astype(np.float32)
    if data.dtype == np.int16:
        x /= 32768.0
    if x.ndim > 1:
        x = x.mean(axis=1)
    return x, int(sr)


def run_engine(cmd: list[str], name: str = "") -> None:
    """Run an engine (`name` when `cmd[0]` is an interpreter, not the engine); failures carry
    its stderr, which says what went wrong."""
    res = subprocess.run(cmd, capture_output=True, timeout=_SUBPROCESS_TIMEOUT_S)
    if res.returncode != 0:
        err = res.stderr.decode(errors="replace").strip()[-300:]
        raise RuntimeError(f"{name or cmd[0]} exited {res.returncode}: {err}")


class Engine(ABC):
    """Interface: draw voices and render texts to (waveform, native sample rate)."""

    name = ""
    binary = ""
    train_only = False
    """True when its clips may train but never be scored (their labels are approximate)."""

    def available(self) -> bool:
        """Engines are optional system packages; callers skip missing ones explicitly."""
        return shutil.which(self.binary) is not None

    @abstractmethod
    def make_voice(self, seed: int, index: int) -> Voice:
        """The voice `index` of this engine for `seed` (same arguments, same voice)."""

    @abstractmethod
    def render_raw(self, voice: Voice, texts: list[str], scratch: Path) -> Rendered:
        """Speak each text with `voice`; audio at the engine's native rate."""


def scratch_dir(root: Path) -> Path:
    """Fresh per-call directory under `root` for engine temp files."""
    root.mkdir(parents=True, exist_ok=True)
    d = root / f"job-{os.getpid()}-{os.urandom(4).hex()}"
    d.mkdir()
    return d
