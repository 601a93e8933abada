"""Guided recording of a user's voice for personalisation: `edge-node enroll DIR`.

The model's commands are asked for several times each, then a few other phrases (the user's
own "not a command"). After each prompt a short window is captured from the node's own audio
source (the microphone on a Pi, through the same conditioning the detector hears) and its
second centred on the word is written as `DIR/<label>/<speaker>_nohash_<n>.wav`: the
Speech Commands layout that `kws-train finetune --user DIR` reads, one speaker id per person.
A window quieter than the detector's gate is asked for again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_node.audio.base import SAMPLE_RATE, AudioSource, AudioSourceError
from edge_node.audio.wav import write_wav
from edge_node.detector import rms_dbfs

log = logging.getLogger(__name__)

UNKNOWN_LABEL = "_unknown_"
OTHER_PHRASES = (
    "good morning", "what time is it", "hello there", "thank you very much",
    "dinner is ready", "open the window", "it is raining again", "where are my keys",
    "see you later", "how are you", "put the kettle on", "that sounds nice",
)
"""Things people say near the node that are not commands (read in this order)."""


@dataclass(frozen=True)
class EnrollSettings:
    """How many recordings to ask for, and how each is captured."""

    takes: int = 5
    """Recordings of each command (`kws-train finetune` tunes on 5 by default)."""
    others: int = 5
    """Recordings of other phrases (`_unknown_`): without them a tuned model takes more of
    the user's other words for commands (BENCHMARKS.md, personalisation)."""
    window_s: float = 2.5
    """Seconds captured after each prompt; the second centred on the speech in it is kept."""
    min_dbfs: float = -65.0
    """A kept second quieter than this holds no speech (the node's gate)."""
    retries: int = 2
    """Times a silent capture is asked for again before that prompt is skipped."""


def speaker_id(name: str) -> str:
    """A short hex id for a person's name, as Speech Commands names its speakers."""
    return hashlib.sha1(name.encode()).hexdigest()[:8]


def prompts(commands: Sequence[str], settings: EnrollSettings) -> list[tuple[str, str]]:
    """(label, text to say) in recording order: each command `takes` times, then others."""
    plan = [(word, word) for _ in range(settings.takes) for word in commands]
    plan += [(UNKNOWN_LABEL, OTHER_PHRASES[i % len(OTHER_PHRASES)])
             for i in range(settings.others)]
    return plan


def speech_start(samples: np.ndarray) -> int:
    """Start of the second centred on where the sound is: the energy centroid above the noise
    floor (the median 10 ms frame), so the word sits mid-window as in training."""
    if len(samples) <= SAMPLE_RATE:
        return 0
    frame = SAMPLE_RATE // 100
    n = len(samples) // frame
    energy = np.sum(samples[: n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1)
    above = np.clip(energy - np.median(energy), 0.0, None)
    centre = (float(np.sum(above * np.arange(n)) / np.sum(above)) + 0.5) * frame if (
        above.sum() > 0) else len(samples) / 2
    return int(np.clip(round(centre) - SAMPLE_RATE // 2, 0, len(samples) - SAMPLE_RATE))


def centred_second(samples: np.ndarray) -> np.ndarray:
    """The second around the speech (shorter input is returned whole)."""
    start = speech_start(samples)
    return samples[start : start + SAMPLE_RATE]


def capture(source: AudioSource, seconds: float) -> np.ndarray:
    samples = source.read_seconds(seconds)
    if len(samples) < int(round(seconds * SAMPLE_RATE)):
        raise AudioSourceError("the audio source ended before the enrolment did")
    return samples


def next_index(folder: Path, speaker: str) -> int:
    """Numbers continue after a speaker's earlier recordings, so a session can be resumed."""
    taken = [int(p.stem.rsplit("_", 1)[1]) for p in folder.glob(f"{speaker}_nohash_*.wav")
             if p.stem.rsplit("_", 1)[1].isdigit()]
    return max(taken, default=-1) + 1


def enroll(source: AudioSource, out_dir: Path, commands: Sequence[str], speaker: str,
           settings: EnrollSettings, say: Callable[[str], None] = print) -> list[Path]:
    """Prompt, capture and save every recording of the plan; returns the files written."""
    plan = prompts(commands, settings)
    speaker = speaker_id(speaker)
    written: list[Path] = []
    for number, (label, text) in enumerate(plan, start=1):
        for attempt in range(settings.retries + 1):
            say(f'[{number}/{len(plan)}] say "{text}"' + (" (again, louder)" if attempt else ""))
            clip = centred_second(capture(source, settings.window_s))
            level = rms_dbfs(clip)
            if level >= settings.min_dbfs:
                break
            log.warning("heard nothing in %.1f s (%.0f dBFS, below %.0f)", settings.window_s,
                        level, settings.min_dbfs)
        else:
            log.error('skipped "%s": nothing heard in %d tries', text, settings.retries + 1)
            continue
        folder = out_dir / label
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{speaker}_nohash_{next_index(folder, speaker)}.wav"
        write_wav(path, clip, SAMPLE_RATE)
        written.append(path)
    return written
