"""espeak-ng voice variants: curated stock ones and randomly generated speakers.

Generated variants live in a private copy of espeak-ng-data (symlinks to the system data
plus our own `voices/!v/` files), selected with `--path`, so nothing is installed system-wide.
"""

from __future__ import annotations

import os
import re
import subprocess
from functools import cache
from pathlib import Path

import numpy as np

# (variant file, gender). Robot/echo/"demonic" stock variants are left out on purpose:
# they do not resemble any user; whisper/croak stay in as rare hard cases.
STOCK: tuple[tuple[str, str], ...] = tuple(
    (name, g)
    for g, names in (
        (
            "M",
            "m1 m2 m3 m4 m5 m6 m7 m8 klatt klatt2 klatt3 klatt4 klatt5 klatt6 Alex Andy "
            "adam antonio benjamin boris caleb david Denis Diogo ed edward edward2 Gene Gene2 "
            "gustave Henrique Hugo iven iven2 iven3 iven4 Jacky john Lee marcelo Marco Mario "
            "max Michael michel miguel Mike Nguyen pablo paul pedro quincy rob robert zac "
            "AnxiousAndy grandpa norbert sandro shelby travis victor whisper croak",
        ),
        (
            "F",
            "f1 f2 f3 f4 f5 Alicia Andrea Annie aunty belinda linda steph steph2 steph3 "
            "anika grandma whisperf",
        ),
    )
    for name in names.split()
)

_FORMANT_SPREAD = {"male": 0.03, "female": 0.04, "child": 0.05}


def generate(rng: np.random.Generator, kind: str, tract: float, f0: float) -> str:
    """Variant file text for one speaker: formants scaled by `tract`, base pitch `f0` Hz."""
    top = f0 * float(rng.uniform(1.15, 1.85))
    gender = "male" if kind == "male" else "female"
    lines = [
        "language variant",
        f"name kws_{kind}",
        f"gender {gender}",
        f"pitch {int(round(f0))} {int(round(top))}",
    ]
    spread = _FORMANT_SPREAD[kind]
    for n in range(9):
        scale = tract if n <= 5 else 1.0 + (tract - 1.0) * 0.5
        freq = 100.0 * scale * float(rng.uniform(1.0 - spread, 1.0 + spread))
        height = float(rng.uniform(75.0, 125.0))
        width = float(rng.uniform(75.0, 150.0)) * (1.15 if kind != "male" else 1.0)
        lines.append(f"formant {n} {int(round(freq))} {int(round(height))} {int(round(width))}")
    breath_max = {"male": 2.0, "female": 6.0, "child": 4.0}[kind]
    if rng.random() < 0.6:
        breath = rng.uniform(0.0, breath_max, size=8).round().astype(int)
        lines.append("breath " + " ".join(str(b) for b in breath))
        if rng.random() < 0.5:
            lines.append("breathw 150 150 200 200 400 400")
    lines.append(f"roughness {int(rng.integers(0, 6))}")
    lines.append(f"flutter {int(rng.integers(0, 16))}")
    if rng.random() < 0.5:
        amps = np.sort(rng.uniform(60.0, 255.0, size=3))[::-1].round().astype(int)
        lines.append(f"tone 600 {amps[0]} 1200 {amps[1]} 2000 {amps[2]}")
    lines.append(f"voicing {int(rng.integers(80, 141))}")
    lines.append(f"consonants {int(rng.integers(70, 131))} {int(rng.integers(70, 131))}")
    if rng.random() < 0.2:
        lines.append(f"klatt {int(rng.integers(1, 7))}")
    return "\n".join(lines) + "\n"


@cache
def system_data_dir() -> Path:
    """Location of the system espeak-ng-data, as reported by espeak-ng itself."""
    out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True)
    m = re.search(r"Data at:\s*(\S+)", out.stdout)
    if not m:
        raise RuntimeError(f"cannot locate espeak-ng-data in: {out.stdout!r}")
    return Path(m.group(1))


def data_root(parent: Path) -> Path:
    """Per-process private data farm under `parent` (the dir to pass as --path).

    Only the curated stock variants are linked and generated ones are removed after use:
    espeak-ng fails outright once a voices dir lists more than 349 entries.
    """
    root = parent / f"espeak-{os.getpid()}"
    data = root / "espeak-ng-data"
    variants = data / "voices" / "!v"
    if variants.is_dir():
        return root
    system = system_data_dir()
    variants.mkdir(parents=True)
    for entry in system.iterdir():
        if entry.name != "voices":
            (data / entry.name).symlink_to(entry)
    for name, _ in STOCK:
        if (system / "voices" / "!v" / name).exists():
            (variants / name).symlink_to(system / "voices" / "!v" / name)
    return root


def variant_path(root: Path, name: str) -> Path:
    """Where variant `name` lives in the farm rooted at `root`."""
    return root / "espeak-ng-data" / "voices" / "!v" / name


def install(root: Path, name: str, text: str) -> Path:
    """Write a generated variant into the private farm (atomic); returns its path."""
    path = variant_path(root, name)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path
