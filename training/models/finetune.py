"""Personalisation: fine-tune a trained model on a handful of the user's own recordings.

The user's clips (`DIR/<label>/*.wav`, e.g. made with `edge-node record`) are split per label
into a few for training and the rest held back. Training mixes many augmented copies of the
user's clips with a replay sample of the original data (so `_unknown_` and `_silence_` are not
forgotten), at a low learning rate, for a few epochs: about a minute on a laptop CPU. Both the
base and the tuned model are scored on the held-back clips in the node's runtime.

The base is a training run's model, or an installed one: `kws-train --install` puts the Keras
weights beside the `.tflite` (stamped with its sha256). When the user has not kept a training
dataset to replay, a small one like it is synthesised (fresh voices of the engines the base
trained on), so personalising needs nothing but the recordings.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_node.model import DEFAULT_MODEL, file_sha256, read_manifest
from training.data.augment import Augmenter
from training.data.dataset import Clip, load_synthetic
from training.data.dataset_synth import synthesize_dataset
from training.data.featurize import featurize, load_audio
from training.evaluation.metrics import scores
from training.evaluation.node_eval import predict_in_runtime

log = logging.getLogger(__name__)

REPLAY_SEED_OFFSET = 3000
"""Voices of a synthesised replay set are drawn with seed + this: not the training voices."""
REPLAY_VOICES_PER_ENGINE = 24
INHERITED = ("engines", "attribution")
"""Manifest facts a tuned model keeps from its base: the engines the base trained on (what a
later fine-tune of it replays) and the licences of the recorded data in it (CC BY asks that
they travel with every model made from that data, a tuned one too). It also keeps the base's
calibrated threshold: a user has no held-out people to calibrate on, and at the node's default
0.6 four tuned 3.0.0 models fired 7.8 times an hour on held-out talk where at the base's 0.70
they fired 3.3 times (BENCHMARKS.md, "Personalisation on kws-default 3.0.0")."""


def weights_path(model: Path) -> Path:
    """Where the Keras model an installed `.tflite` was exported from lives: beside it, with
    `<name>.keras.json` holding that `.tflite`'s sha256 (`kws-train --install` writes both)."""
    return model.with_suffix(".keras")


def stamp_path(model: Path) -> Path:
    weights = weights_path(model)
    return weights.with_name(weights.name + ".json")


@dataclass(frozen=True)
class BaseModel:
    """A model to personalise: the int8 `.tflite` the node runs (with its manifest) and the
    Keras model it was exported from."""

    tflite: Path
    keras: Path

    @classmethod
    def of_run(cls, run: Path) -> BaseModel:
        """A training run's model directory (RUN/final)."""
        return cls(run / "model_int8.tflite", run / "model.keras")

    @classmethod
    def installed(cls, model: Path = DEFAULT_MODEL) -> BaseModel:
        """An installed model (the node's bundled one by default) and the weights beside it,
        refused unless they are the weights of exactly that file: a fine-tune must start from
        the model the node runs, not from one an update or `--install` replaced."""
        weights, stamp = weights_path(model), stamp_path(model)
        if not weights.is_file() or not stamp.is_file():
            raise FileNotFoundError(
                f"no Keras weights beside {model} ({weights.name}): a model installed by "
                "`kws-train train|default --install` has them (`kws-train default --no-loeo` "
                "rebuilds the bundled model with them, about 10 minutes on 2 cores), or give "
                "--base RUN/final")
        expected = json.loads(stamp.read_text()).get("model_sha256")
        if expected != file_sha256(model):
            raise ValueError(f"{weights} are the weights of another model than {model}: give "
                             "--base RUN/final of the model to tune")
        return cls(model, weights)

    @classmethod
    def of(cls, path: Path | None) -> BaseModel:
        """--base: a run directory, an installed `.tflite`, or None for the bundled model."""
        if path is None:
            return cls.installed()
        return cls.of_run(path) if path.is_dir() else cls.installed(path)


@dataclass(frozen=True)
class FinetuneSettings:
    """How a base model is adapted to one user's voice."""

    shots: int = 5
    """Recordings per label used for training; the rest are held back for the report."""
    user_copies: int = 24
    """Augmented copies of each training recording."""
    replay_clips: int = 1500
    """Clips of the original data mixed in, against forgetting."""
    balance: bool = True
    """Weigh the examples so that each label has the share it has in the replayed data: the
    user's many augmented command copies otherwise teach the model that nearly everything is
    a command, and it takes other words for commands (BENCHMARKS.md, personalisation)."""
    epochs: int = 3
    learning_rate: float = 2.5e-4
    """Three epochs at this rate keep a new voice's gain and take fewest of its other words
    for commands (6 at 5e-4: 9.3% against 4.7%, BENCHMARKS.md, personalisation)."""
    seed: int = 1
    workers: int = 2


def replay_clips(base: BaseModel, roots: list[Path]) -> list[Clip]:
    """The clips of `roots` by the engines the base model trained on (its manifest says
    which): replaying only those keeps the gain on the user's clips the user's clips' alone."""
    manifest = read_manifest(base.tflite)
    commands = list(manifest.commands)
    trained_on = set(manifest.extra.get("engines") or ())
    return [c for root in roots for c in load_synthetic(root, commands)
            if not trained_on or c.engine in trained_on]


def synthesise_replay(base: BaseModel, out: Path, seed: int, workers: int) -> Path:
    """A small dataset like the base model's (its words, fresh voices of its engines) to replay
    when the training data is not at hand; kept in `out` for the next fine-tune."""
    from training.tts.engines import ENGINES

    manifest = read_manifest(base.tflite)
    engines = tuple(e for e in manifest.extra.get("engines") or ("espeak", "flite", "festival")
                    if e in ENGINES and not ENGINES[e].train_only and ENGINES[e].available())
    if not engines:
        raise RuntimeError(f"none of the engines {base.tflite} trained on is installed here: "
                           "give --data with its training data")
    if not (out / "clips.csv").is_file():
        synthesize_dataset(out, seed=seed + REPLAY_SEED_OFFSET,
                           words=list(manifest.commands),
                           clips_per_word_per_engine={e: REPLAY_VOICES_PER_ENGINE for e in engines},
                           unknown_clips_per_engine={e: 3 * REPLAY_VOICES_PER_ENGINE
                                                     for e in engines},
                           silence_clips=200, workers=workers, engines=engines)
    return out


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


def finetune(base: BaseModel, user: list[Clip], replay: list[Clip], noises: list[np.ndarray],
             out: Path, settings: FinetuneSettings) -> dict[str, Any]:
    """Fine-tune the base's Keras model; export int8 to `out`; compare on held-back clips."""
    base_int8 = base.tflite
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
    weights = label_balance(y_train, y[n_train - len(replay): n_train], len(labels)) if (
        settings.balance) else np.ones(len(y_train), dtype=np.float32)
    model = _fit(base.keras, x_train, y_train, weights, len(labels), settings)
    from training.models.export import export

    out.mkdir(parents=True, exist_ok=True)
    rep = x_train[rng.choice(len(x_train), min(400, len(x_train)), replace=False)]
    tuned = export(model, out / "model_int8.tflite", name=f"{manifest.name}-personal",
                   version=f"{manifest.version}+personal", labels=labels, features=spec,
                   output=manifest.output, representative=rep,
                   extra={"base_model": str(base_int8), "user_shots": settings.shots,
                          **inherited(manifest.extra),
                          **({"calibration": {"inherited_from":
                                              f"{manifest.name} {manifest.version}"}}
                             if manifest.threshold is not None else {})},
                   threshold=manifest.threshold)
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


def inherited(base_extra: dict[str, Any]) -> dict[str, Any]:
    """The base manifest's `INHERITED` entries, for the tuned model's manifest."""
    return {key: base_extra[key] for key in INHERITED if key in base_extra}


def label_balance(y_train: np.ndarray, y_reference: np.ndarray, n_labels: int) -> np.ndarray:
    """Per-example weights giving each label the share it has in `y_reference` (labels the
    reference lacks keep weight 1); the weights average 1."""
    have = np.bincount(y_train, minlength=n_labels) / len(y_train)
    want = np.bincount(y_reference, minlength=n_labels) / max(len(y_reference), 1)
    per_label = np.where((have > 0) & (want > 0), want / np.maximum(have, 1e-12), 1.0)
    weights = per_label[y_train].astype(np.float32)
    return weights / weights.mean()


def _fit(keras_path: Path, x: np.ndarray, y: np.ndarray, weights: np.ndarray, n_labels: int,
         settings: FinetuneSettings) -> Any:
    import tensorflow as tf

    from training.models.train import set_seeds

    set_seeds(settings.seed)
    model = tf.keras.models.load_model(keras_path)
    output_logits = model.layers[-1].get_config().get("activation") == "linear"
    model.compile(optimizer=tf.keras.optimizers.Adam(settings.learning_rate),
                  loss=tf.keras.losses.CategoricalCrossentropy(from_logits=output_logits),
                  metrics=["accuracy"])
    one_hot = np.eye(n_labels, dtype=np.float32)[y]
    model.fit(x[..., None].astype(np.float32), one_hot, sample_weight=weights, batch_size=64,
              epochs=settings.epochs, shuffle=True, verbose=2)
    return model
