"""Recordings on disk -> 16 kHz mono float32, for every training loader: WAV and FLAC.

WAV goes through the node's own reader; FLAC (Speech Commands and the real-speech corpora
ship as FLAC) is decoded by `soundfile` and then conditioned by the same converter, so a clip
reads the same whichever of the two formats it is stored in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_node.audio.base import AudioSourceError
from edge_node.audio.wav import converter_for, read_wav_mono16k

AUDIO_SUFFIXES = (".wav", ".flac")
"""File types the training loaders read."""


def is_audio_file(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES


def audio_files(folder: Path) -> list[Path]:
    """The recordings directly in `folder`, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and is_audio_file(p))


def read_audio(path: str | Path) -> np.ndarray:
    """A whole recording as 16 kHz mono float32 in [-1, 1]."""
    path = Path(path)
    if path.suffix.lower() == ".wav":
        return read_wav_mono16k(path)
    try:
        import soundfile
    except ImportError as e:  # the node installs without the `train` extra
        raise AudioSourceError(f"{path}: reading FLAC needs soundfile "
                               "(pip install 'kws-edge-node[train]')") from e
    try:
        data, rate = soundfile.read(str(path), dtype="int16", always_2d=False)
    except (RuntimeError, soundfile.LibsndfileError) as e:
        raise AudioSourceError(f"cannot read audio file {path}: {e}") from e
    converter = converter_for(int(rate), data, "auto", remove_dc=False)
    return np.concatenate((converter.convert(data), converter.flush()))
