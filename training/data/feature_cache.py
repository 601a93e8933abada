"""A disk cache of feature rows, so recipes that change only training settings, or only how many
augmented copies a source gets, do not featurise the same examples again.

A row is exactly what `training.data.featurize` computes for (clip index, clip audio and label,
copy) in a context (feature spec, augmentation settings and noise bank, seed): each example is
seeded by (seed, clip index, copy), so a cached row is the row a fresh run would compute, bit
for bit. A clip is known by its decoded samples, not its file: data copied again (new times),
moved or reached through a link keeps its rows.
Rows live in chunks under `ROOT/<context digest>/`: one `.npy` of float16 rows and one `.json` of
their keys per run that added any; a new run reuses every row it finds and writes the rest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.data.dataset import Clip

log = logging.getLogger(__name__)

Key = tuple[int, str, int]
"""(clip index, clip identity, copy)."""


def clip_identity(clip: Clip, audio: np.ndarray) -> str:
    """What a clip's rows depend on besides its index: its label (silence is augmented apart)
    and its samples as decoded (a clip edited in place is a new clip)."""
    digest = hashlib.blake2b(np.ascontiguousarray(audio).tobytes(), digest_size=16)
    return f"{clip.label}|{digest.hexdigest()}"


def context_digest(spec: Any, augmenter: Any, seed: int) -> str:
    """What every row of a context shares: the feature spec, the augmenter's settings and noise
    bank (its samples), and the seed."""
    digest = hashlib.sha256()
    digest.update(json.dumps(_plain(spec), sort_keys=True, default=str).encode())
    digest.update(str(seed).encode())
    if augmenter is None:
        digest.update(b"clean")
    else:
        digest.update(json.dumps(_plain(augmenter.settings), sort_keys=True,
                                 default=str).encode())
        for noise in augmenter.noises:
            digest.update(np.ascontiguousarray(noise).tobytes())
    return digest.hexdigest()[:24]


def _plain(value: Any) -> Any:
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value


class FeatureCache:
    """The cached rows of one context."""

    def __init__(self, root: Path, context: str) -> None:
        self.folder = Path(root) / context
        self._chunks: list[np.ndarray] = []
        self._where: dict[Key, tuple[int, int]] = {}
        for keys_path in sorted(self.folder.glob("*.json")):
            rows_path = keys_path.with_suffix(".npy")
            if not rows_path.exists():
                continue
            rows = np.load(rows_path, mmap_mode="r")
            keys = json.loads(keys_path.read_text())
            if len(keys) != len(rows):
                log.warning("feature cache: %s does not match its keys; ignored", rows_path)
                continue
            chunk = len(self._chunks)
            self._chunks.append(rows)
            for row, key in enumerate(keys):
                self._where[(int(key[0]), str(key[1]), int(key[2]))] = (chunk, row)

    def __len__(self) -> int:
        return len(self._where)

    def lookup(self, keys: Sequence[Key]) -> list[int]:
        """Positions in `keys` of the rows not cached."""
        return [i for i, key in enumerate(keys) if key not in self._where]

    def rows(self, keys: Sequence[Key]) -> np.ndarray:
        """The cached rows of `keys` (all must be cached), stacked."""
        return np.stack([self._chunks[c][r] for c, r in (self._where[k] for k in keys)])

    def add(self, keys: Sequence[Key], rows: np.ndarray) -> None:
        """Store new rows as a chunk of their own (written atomically: a killed run leaves
        no half chunk behind)."""
        if not keys:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(json.dumps(list(keys)).encode()).hexdigest()[:16]
        rows_path, keys_path = self.folder / f"{name}.npy", self.folder / f"{name}.json"
        with open(rows_path.with_suffix(".tmp"), "wb") as fh:
            np.save(fh, rows)
        os.replace(rows_path.with_suffix(".tmp"), rows_path)
        keys_path.with_suffix(".tmpj").write_text(json.dumps([list(k) for k in keys]))
        os.replace(keys_path.with_suffix(".tmpj"), keys_path)
        chunk = len(self._chunks)
        self._chunks.append(np.load(rows_path, mmap_mode="r"))
        for row, key in enumerate(keys):
            self._where[key] = (chunk, row)
