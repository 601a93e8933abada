"""Personalisation: fine-tune a trained model on a handful of the user's own recordings.

The user's clips (`DIR/<label>/*.wav`, e.g. made with `edge-node record`) are split per label
into a few for training and the rest held back. Training mixes many augmented copies of the
user's clips with a replay sample of the original data (so `_unknown_` and `_silence_` are not
forgotten), at a low learning rate, for a few epochs: about a minute on a laptop CPU. Both the
base and the tuned model are scored on the held-back clips in the node's runtime.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_node.model import read_manifest
from training.augment import Augmenter
from training.dataset import Clip, load_synthetic
from training.featurize import featurize, load_audio
from training.metrics import scores
from training.node_eval import predict_in_runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneSettings:
    """How a base model is adapted to one user's voice."""

    shots: int = 5
    """Recordings per label used for training; the rest are held back for the report."""
    user_copies: int = 24
    """Augmented copies of each training recording."""
    replay_clips: int = 1500
    """Clips of the original data mixed in, against forgetting."""
    epochs: int = 6
    learning_rate: float = 5e-4
    seed: int = 1
    workers: int = 2


def replay_clips(base_run: Path, roots: list[Path]) -> list[Clip]:
    """The clips of `roots` by the engines the base model trained on (its manifest says
    which): replaying only those keeps the gain on the user's clips the user's clips' alone."""
    manifest = read_manifest(base_run / "model_int8.tflite")
    commands = [lab for lab in manifest.labels if not lab.startswith("_")]
    trained_on = set(manifest.extra.get("engines") or ())
    return [c for root in roots for c in load_synthetic(root, commands)
            if not trained_on or c.engine in trained_on]


def split_shots(clips: list[Clip], shots: int, seed: int) -> tuple[list[Clip], list[Clip]]:
    """Per label: `shots` random clips to train on, the rest held back."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[Clip]] = defaultdict(list)
    for clip in clips:
        by_label[clip.label].append(clip)
    train, held = [], []
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda c: str(c.path))
        order = rng.permutation(len(group))
        train += [group[i] for i in order[:shots]]
        held += [group[i] for i in order[shots:]]
    return train, held


def finetune(base_run: Path, user: list[Clip], replay: list[Clip], noises: list[np.ndarray],
             out: Path, settings: FinetuneSettings) -> dict[str, Any]:
    """Fine-tune `base_run/model.keras`; export int8 to `out`; compare on held-back clips."""
    base_int8 = base_run / "model_int8.tflite"
    manifest = read_manifest(base_int8)
    labels = list(manifest.labels)
    unknown = [c for c in user if c.label not in labels]
    if unknown:
        raise ValueError(f"recordings with labels the model does not have: {unknown[0].path}")
    train_user, held = split_shots(user, settings.shots, settings.seed)
    rng = np.random.default_rng(settings.seed)
    replay = [replay[i] for i in rng.permutation(len(replay))[: settings.replay_clips]]
    clips = train_user + replay + held
    audio = load_audio(clips, settings.workers)
    n_train = len(train_user) + len(replay)
    copies = [settings.user_copies] * len(train_user) + [1] * len(replay)
    spec = manifest.features
    augmented = featurize(audio, clips, list(range(n_train)), spec, Augmenter(noises), copies,
                          settings.seed, settings.workers, desc="fine-tune features")
    clean_held = featurize(audio, clips, list(range(n_train, len(clips))), spec, None, 1,
                           settings.seed, settings.workers, desc="held-back features")
    y = np.array([labels.index(c.label) for c in clips])
    x_train, y_train = augmented.x, y[augmented.clip_index]
    model = _fit(base_run / "model.keras", x_train, y_train, len(labels), settings)
    from training.export import export

    out.mkdir(parents=True, exist_ok=True)
    rep = x_train[rng.choice(len(x_train), min(400, len(x_train)), replace=False)]
    tuned = export(model, out / "model_int8.tflite", name=f"{manifest.name}-personal",
                   version=f"{manifest.version}+personal", labels=labels, features=spec,
                   output=manifest.output, representative=rep,
                   extra={"base_model": str(base_int8), "user_shots": settings.shots})
    model.save(out / "model.keras")
    y_held = y[clean_held.clip_index]
    engines = ["user"] * len(y_held)
    result = {"train_recordings": len(train_user), "held_back": len(held)}
    for name, path in (("base", base_int8), ("personalised", tuned)):
        probs = predict_in_runtime(path, clean_held.x, "ai-edge-litert")
        result[name] = scores(probs, y_held, labels, engines)
    (out / "finetune.json").write_text(json.dumps(result, indent=1))
    log.info("held-back accuracy: base %.3f -> personalised %.3f",
             result["base"]["accuracy"], result["personalised"]["accuracy"])
    return result


def _fit(keras_path: Path, x: np.ndarray, y: np.ndarray, n_labels: int,
         settings: FinetuneSettings) -> Any:
    import tensorflow as tf

    from training.train import set_seeds

    set_seeds(settings.seed)
    model = tf.keras.models.load_model(keras_path)
    output_logits = model.layers[-1].get_config().get("activation") == "linear"
    model.compile(optimizer=tf.keras.optimizers.Adam(settings.learning_rate),
                  loss=tf.keras.losses.CategoricalCrossentropy(from_logits=output_logits),
                  metrics=["accuracy"])
    one_hot = np.eye(n_labels, dtype=np.float32)[y]
    model.fit(x[..., None].astype(np.float32), one_hot, batch_size=64, epochs=settings.epochs,
              shuffle=True, verbose=2)
    return model
