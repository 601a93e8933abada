"""Train, calibrate and export the isolation check's model (`kws-train isolation`).

The check tells a command said on its own from the same word inside talk (`edge_node.isolation`
says why the node needs it). Its examples come from training-side recordings of recorded people
and real talk (`training.data.isolation`); its threshold is chosen on more of them, made with
other seeds (the best separation that still keeps a stated share of the words said alone), so
the classifier's own threshold can then be calibrated with the check in the loop
(`training.evaluation.calibrate`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edge_node.features import logmel_spec, make_extractor
from edge_node.isolation import ALONE_LABEL, ISOLATION_LABELS
from training.data.dataset import SPEECH_COMMANDS_ATTRIBUTION
from training.models.settings import IsolationSettings

log = logging.getLogger(__name__)


def train_isolation(settings: IsolationSettings, speech_commands: Path, real_speech: Path,
                    out: Path, work: Path) -> dict[str, Any]:
    """Make the recordings (kept in `work`), train, choose the threshold, export `out` (int8
    .tflite and manifest); returns what the manifest records of it."""
    import tensorflow as tf

    from training.data.isolation import examples, training_recordings
    from training.data.real_speech import licences, load_corpus, split_corpus
    from training.models.architectures import isolation_cnn
    from training.models.export import export, representative_sample

    spec = logmel_spec(clip_ms=settings.before_ms + settings.after_ms)
    features = make_extractor(spec)
    before_s, after_s = settings.before_ms / 1000.0, settings.after_ms / 1000.0
    train_seed, held_seed = settings.seed + 1, settings.seed + 1001
    recordings = training_recordings(speech_commands, real_speech, work, settings.minutes,
                                     {train_seed: settings.recordings,
                                      held_seed: settings.validation_recordings})
    train, held = recordings[train_seed], recordings[held_seed]
    x, y = examples(train, features, before_s, after_s, settings.seed)
    x_val, y_val = examples(held, features, before_s, after_s, settings.seed + 1)
    tf.keras.utils.set_random_seed(settings.seed)
    model = isolation_cnn(features.shape, len(ISOLATION_LABELS), settings.width)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    share = np.bincount(y, minlength=len(ISOLATION_LABELS)) / len(y)
    model.fit(x[..., None], y, epochs=settings.epochs, batch_size=settings.batch_size,
              class_weight={i: 0.5 / max(p, 1e-6) for i, p in enumerate(share)},
              validation_data=(x_val[..., None], y_val), verbose=2)
    alone = ISOLATION_LABELS.index(ALONE_LABEL)
    scores = model.predict(x_val[..., None], verbose=0, batch_size=512)[:, alone]
    threshold, validation = choose_threshold(scores, y_val == alone, settings.keep_alone)
    log.info("isolation threshold %.3f: %.2f%% of validation words alone kept, %.2f%% of the "
             "other moments passed", threshold, 100 * validation["alone_kept"],
             100 * validation["other_passed"])
    corpus = split_corpus(load_corpus(real_speech))
    record = {
        "isolation": {"before_ms": settings.before_ms, "after_ms": settings.after_ms},
        "isolation_training": {**asdict(settings), "examples": int(len(y)),
                               "validation": validation},
        "attribution": [SPEECH_COMMANDS_ATTRIBUTION,
                        *licences([*corpus.train_talk, *corpus.train_noise])],
    }
    export(model, out, name="kws-isolation", version=settings.version,
           labels=list(ISOLATION_LABELS), features=spec, output="probabilities",
           representative=representative_sample(x[..., None], settings.seed),
           extra=record, threshold=threshold)
    return record


def choose_threshold(scores: np.ndarray, is_alone: np.ndarray,
                     keep: float) -> tuple[float, dict[str, float]]:
    """Of the thresholds 0.01-0.99 that let through at least `keep` of the words said alone,
    the one that tells words alone from other moments best (most alone kept plus other held
    back: Youden's J); what it lets through of both."""
    if not np.any(is_alone) or np.all(is_alone):
        raise ValueError("choosing the isolation threshold needs words alone and other moments")
    grid = np.round(np.arange(0.01, 1.0, 0.01), 2)
    kept = np.array([np.mean(scores[is_alone] >= t) for t in grid])
    passed = np.array([np.mean(scores[~is_alone] >= t) for t in grid])
    allowed = kept >= keep
    best = int(np.argmax(np.where(allowed, kept - passed, -np.inf))) if allowed.any() else 0
    threshold = float(grid[best])
    return threshold, {
        "threshold": threshold,
        "alone_kept": float(kept[best]),
        "other_passed": float(passed[best]),
        "alone": int(np.sum(is_alone)),
        "other": int(np.sum(~is_alone)),
    }
