"""Small, real excerpts of ../shared (recorded people, real talk and noise) for tests.

CI has ../shared beside its clone; a checkout without it skips these tests, except under CI
(CI=true), where a missing ../shared is a failure rather than a silent skip.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared"


def shared_folder(name: str) -> Path:
    folder = SHARED / name
    if not (folder / "MANIFEST.csv").is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{folder} is missing: CI must have ../shared beside the clone")
        pytest.skip(f"{folder} is not here (../shared beside the checkout)")
    return folder


def mini_speech_commands(dest: Path, per_word: int = 4,
                         words: tuple[str, ...] = ("go", "down", "up", "stop", "yes", "left",
                                                   "right", "no", "bed", "cat", "happy",
                                                   "_silence_")) -> Path:
    """`per_word` FLAC clips of each word (the first speakers in name order), linked from
    ../shared/speech_commands in its layout, with one background-noise recording."""
    source = shared_folder("speech_commands")
    for word in (*words, "_background_noise_"):
        count = 1 if word == "_background_noise_" else per_word
        (dest / word).mkdir(parents=True, exist_ok=True)
        for clip in sorted((source / word).glob("*.flac"))[:count]:
            (dest / word / clip.name).symlink_to(clip)
    return dest


def mini_real_speech(dest: Path, talk_files: int = 24) -> Path:
    """The noise recordings and `talk_files` talk files of ../shared/real_speech (a few of
    each corpus), with a MANIFEST.csv of just those."""
    source = shared_folder("real_speech")
    with (source / "MANIFEST.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    talk = [r for r in rows if r["kind"] == "speech"]
    chosen = [r for r in rows if r["kind"] == "noise"] + talk[:: max(1, len(talk) // talk_files)]
    for row in chosen:
        path = dest / row["file"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(source / row["file"])
    with (dest / "MANIFEST.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields or [])
        writer.writeheader()
        writer.writerows(chosen)
    return dest
