"""Training data sources: synthetic clips, the Google Speech Commands layout, user recordings.

Every source becomes a list of `Clip`s that know their label, engine (TTS engine, "human" for
Speech Commands, "user" for the user's own recordings) and voice, so that splits can be made by
voice and by engine.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
import tarfile
import tempfile
import urllib.request
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.data.audio_files import audio_files, read_audio
from training.data.vocab import COMMANDS, SILENCE_LABEL, UNKNOWN_LABEL

log = logging.getLogger(__name__)

SPEECH_COMMANDS_NOISE_DIR = "_background_noise_"
PEOPLE_ENGINE = "human"
"""`Clip.engine` of recorded people (a Speech Commands layout)."""
SPEECH_COMMANDS_ATTRIBUTION = (
    "Speech Commands: P. Warden, \"Speech Commands: A Dataset for Limited-Vocabulary Speech "
    "Recognition\", arXiv:1804.03209 (2018), Google; CC BY 4.0")
"""What a model trained on recorded Speech Commands clips must say of them."""
USER_ENGINE = "user"
"""`Clip.engine` of the user's own recordings (`edge-node enroll`)."""
STREAM_WINDOWS = "stream-windows"
"""`kind` in the dataset.json of windows mined from a recording (train-only clips)."""
SPEAKER_RE = re.compile(r"^([0-9a-f]+)_nohash_", re.IGNORECASE)


@dataclass(frozen=True)
class Clip:
    """One labelled recording."""

    path: Path
    label: str
    engine: str
    voice: str
    text: str = ""
    weight: float = 1.0
    """How much this clip counts in training (user recordings are mixed in with a weight)."""
    scored: bool = True
    """Whether validation and test sets may use it. Windows cut from a stream
    (`training.data.stream_mining`) and accented voices (`training.tts.accents`) train only: their
    labels come from event times or respellings, and the accuracy figures stay comparable
    with isolated-word test sets."""


def label_for(word: str, commands: Sequence[str]) -> str:
    """Folder or word name -> training label (non-commands become `_unknown_`)."""
    if word in commands or word in (UNKNOWN_LABEL, SILENCE_LABEL):
        return word
    return UNKNOWN_LABEL


def load_synthetic(root: Path, commands: Sequence[str] = COMMANDS) -> list[Clip]:
    """Clips listed in `root/clips.csv` as written by `training.data.dataset_synth`."""
    root = Path(root)
    index = root / "clips.csv"
    if not index.is_file():
        raise FileNotFoundError(f"{index} not found: run `kws-train synth --out {root}` first")
    info = root / "dataset.json"
    kind = json.loads(info.read_text()).get("kind", "") if info.is_file() else ""
    clips = []
    with open(index, newline="") as fh:
        for row in csv.DictReader(fh):
            clips.append(Clip(
                path=root / row["path"],
                label=label_for(row["label"], commands),
                engine=row["engine"],
                voice=f'{row["engine"]}:{row["voice"]}',
                text=row.get("text", ""),
                scored=kind != STREAM_WINDOWS and row.get("scored", "1") != "0",
            ))
    return clips


def load_label_folders(root: Path, commands: Sequence[str], engine: str,
                       weight: float = 1.0) -> list[Clip]:
    """The Google Speech Commands layout (`root/<label>/*.wav` or `.flac`), also used for user
    recordings.

    Folders that are not commands become `_unknown_`; `_background_noise_` is skipped (see
    `speech_commands_noise`). The speaker is the file-name prefix before `_nohash_` when present.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory of label folders")
    clips = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name == SPEECH_COMMANDS_NOISE_DIR:
            continue
        label = label_for(folder.name, commands)
        for wav in audio_files(folder):
            match = SPEAKER_RE.match(wav.name)
            speaker = match.group(1) if match else engine
            clips.append(Clip(wav, label, engine, f"{engine}:{speaker}", folder.name, weight))
    if not clips:
        raise FileNotFoundError(f"no <label>/*.wav or *.flac files under {root}")
    return clips


def speech_commands_noise(root: Path) -> list[np.ndarray]:
    """The background-noise recordings that ship with Speech Commands, if present."""
    folder = Path(root) / SPEECH_COMMANDS_NOISE_DIR
    return [read_audio(p) for p in audio_files(folder)] if folder.is_dir() else []


def download_archive(url: str, dest: Path, sha256: str) -> Path:
    """Download a .tar.gz or .zip (e.g. Speech Commands), verify its SHA-256, unpack into `dest`.

    The archive is checked before anything is extracted; members that would escape `dest` are
    refused.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest, suffix=".part", delete=False) as tmp:
        part = Path(tmp.name)
    try:
        digest = hashlib.sha256()
        with urllib.request.urlopen(url) as response, open(part, "wb") as out:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256.lower():
            raise ValueError(
                f"checksum mismatch for {url}: got {digest.hexdigest()}, expected {sha256}"
            )
        if zipfile.is_zipfile(part):
            with zipfile.ZipFile(part) as archive:
                for member in archive.namelist():
                    if Path(member).is_absolute() or ".." in Path(member).parts:
                        raise ValueError(f"archive member {member!r} would escape {dest}")
                archive.extractall(dest)
        else:
            with tarfile.open(part) as archive:
                archive.extractall(dest, filter="data")
    finally:
        part.unlink(missing_ok=True)
    log.info("downloaded and verified %s into %s", url, dest)
    return dest


def split_by_voice(clips: Sequence[Clip], fraction: float, seed: int) -> tuple[list[Clip],
                                                                                list[Clip]]:
    """(rest, held) where `held` has about `fraction` of each engine's voices, all their clips."""
    rng = np.random.default_rng(seed)
    held_voices: set[str] = set()
    for engine in sorted({c.engine for c in clips}):
        voices = sorted({c.voice for c in clips if c.engine == engine})
        count = int(round(len(voices) * fraction))
        if count:
            held_voices.update(rng.choice(voices, size=count, replace=False).tolist())
    rest = [c for c in clips if c.voice not in held_voices]
    held = [c for c in clips if c.voice in held_voices]
    return rest, held


PEOPLE_EVAL_FRACTION = 0.15
"""Share of recorded speakers (Speech Commands) that no shipped model trains on: the people of
the streaming evaluation recording."""


def is_held_out(key: str, fraction: float) -> bool:
    """Whether a speaker (or noise file) belongs to an evaluation part: a fixed hash of its
    name, so every run, fold and seed holds out the same people, whatever else is in the data."""
    return (zlib.crc32(key.encode()) % 1000) < fraction * 1000


def split_people(clips: Sequence[Clip]) -> tuple[list[Clip], list[Clip]]:
    """(train, held) of recorded people's clips: `held` are the `PEOPLE_EVAL_FRACTION` of
    speakers kept for evaluation (their `_silence_` clips, which have no speaker, by file)."""
    held = [is_held_out(c.voice if c.label != SILENCE_LABEL else c.path.name,
                        PEOPLE_EVAL_FRACTION) for c in clips]
    return ([c for c, h in zip(clips, held, strict=True) if not h],
            [c for c, h in zip(clips, held, strict=True) if h])
