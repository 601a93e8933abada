"""Clips -> feature matrices, through `edge_node.features` (the code the node runs).

Augmented copies are computed in worker processes, each example seeded by (seed, clip, copy),
so the result does not depend on how work is split between processes. This runs before
TensorFlow is imported (forking a process that has started TensorFlow's threads is unsafe).
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edge_node.features import FeatureExtractor, FeatureSpec, make_extractor
from training.data.audio_files import read_audio
from training.data.augment import Augmenter, place
from training.data.dataset import Clip
from training.data.feature_cache import FeatureCache, clip_identity, context_digest
from training.data.vocab import SILENCE_LABEL

log = logging.getLogger(__name__)

_WORKER: dict[str, object] = {}


@dataclass
class FeatureSet:
    """Features of clips, float16 to halve memory; `clip_index` maps rows back to clips."""

    x: np.ndarray
    clip_index: np.ndarray

    def __len__(self) -> int:
        return len(self.clip_index)


def load_audio(clips: Sequence[Clip], workers: int = 2) -> list[np.ndarray]:
    paths = [str(c.path) for c in clips]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return list(tqdm(pool.imap(read_audio, paths, chunksize=64), total=len(paths),
                         desc="loading audio", unit="clip"))


def _init(audio: list[np.ndarray], clips: Sequence[Clip], spec: FeatureSpec,
          augmenter: Augmenter | None, seed: int) -> None:
    _WORKER.update(audio=audio, clips=clips, extractor=make_extractor(spec),
                   augmenter=augmenter, seed=seed)


def _features(task: tuple[int, int]) -> np.ndarray:
    index, copy = task
    audio: list[np.ndarray] = _WORKER["audio"]  # type: ignore[assignment]
    clips: Sequence[Clip] = _WORKER["clips"]  # type: ignore[assignment]
    extractor: FeatureExtractor = _WORKER["extractor"]  # type: ignore[assignment]
    augmenter: Augmenter | None = _WORKER["augmenter"]  # type: ignore[assignment]
    rng = np.random.default_rng([int(_WORKER["seed"]), index, copy])  # type: ignore[call-overload]
    clip = audio[index]
    length = extractor.clip_samples
    if augmenter is None:
        return extractor.compute(place(clip, length, rng, centre=True)).astype(np.float16)
    is_speech = clips[index].label != SILENCE_LABEL
    wave = augmenter.waveform(clip, length, rng, is_speech=is_speech)
    kinds = [part for part, _ in extractor.parts] or [extractor]
    parts = [augmenter.spec_augment(x, rng) if kind.is_spectrogram else x
             for x, kind in zip(extractor.compute_parts(wave), kinds, strict=True)]
    return extractor.join(parts).astype(np.float16)


def featurize(audio: list[np.ndarray], clips: Sequence[Clip], indices: Sequence[int],
              spec: FeatureSpec, augmenter: Augmenter | None, copies: int | Sequence[int],
              seed: int, workers: int = 2, desc: str = "features",
              cache: Path | None = None) -> FeatureSet:
    """Features for `clips[i]` for i in `indices`: `copies` augmented versions each (or, with no
    augmenter, one clean version with the clip centred in the window). With `cache` (a
    folder), rows computed before in the same context are read back, not computed again."""
    per_clip = [copies] * len(indices) if isinstance(copies, int) else list(copies)
    tasks = [(i, c) for i, n in zip(indices, per_clip, strict=True) for c in range(n)]
    shape = make_extractor(spec).shape
    x = np.zeros((len(tasks), *shape), dtype=np.float16)
    todo = list(range(len(tasks)))
    if cache is not None:
        store = FeatureCache(cache, context_digest(spec, augmenter, seed))
        identity = {i: clip_identity(clips[i], audio[i]) for i in set(indices)}
        keys = [(i, identity[i], c) for i, c in tasks]
        todo = store.lookup(keys)
        done = sorted(set(range(len(tasks))) - set(todo))
        if done:
            x[done] = store.rows([keys[k] for k in done])
        log.info("%s: %d of %d rows from the feature cache %s", desc, len(done), len(tasks),
                 store.folder)
    if todo:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(workers, initializer=_init,
                      initargs=(audio, clips, spec, augmenter, seed)) as pool:
            rows = list(tqdm(pool.imap(_features, [tasks[k] for k in todo], chunksize=32),
                             total=len(todo), desc=desc, unit="ex"))
        x[todo] = np.stack(rows)
        if cache is not None:
            store.add([keys[k] for k in todo], x[todo])
    return FeatureSet(x, np.array([t[0] for t in tasks], dtype=np.int64))
