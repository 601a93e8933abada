"""Fitting a Keras model on feature sets: fixed seeds, early stopping on held-out voices."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters of one training run."""

    architecture: str = "dscnn"
    """`dscnn` (our default) or `article_cnn` (the article's CNN, stft129x124 features)."""
    epochs: int = 30
    """Upper bound; early stopping usually ends sooner."""
    batch_size: int = 128
    learning_rate: float = 3e-3
    """Adam learning rate; a cosine schedule decays it over `epochs`."""
    patience: int = 6
    """Epochs without validation improvement before stopping (best weights are restored)."""
    label_smoothing: float = 0.05
    seed: int = 1


def set_seeds(seed: int) -> None:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)


def fit(x_train: np.ndarray, y_train: np.ndarray, w_train: np.ndarray, x_val: np.ndarray,
        y_val: np.ndarray, n_labels: int, settings: TrainSettings,
        verbose: int = 2) -> tuple[Any, dict[str, list[float]], str]:
    """Train a fresh model; returns (model, history, output kind)."""
    import tensorflow as tf

    from training.models import build

    set_seeds(settings.seed)
    input_shape = tuple(x_train.shape[1:3])
    sample = x_train[np.random.default_rng(settings.seed).choice(len(x_train),
                                                                  min(2000, len(x_train)))]
    model, output = build(settings.architecture, input_shape, n_labels,
                          normaliser_data=sample[..., None].astype(np.float32))
    steps = max(1, int(np.ceil(len(x_train) / settings.batch_size))) * settings.epochs
    schedule = tf.keras.optimizers.schedules.CosineDecay(settings.learning_rate, steps)
    loss = tf.keras.losses.CategoricalCrossentropy(
        from_logits=output == "logits", label_smoothing=settings.label_smoothing)
    model.compile(optimizer=tf.keras.optimizers.Adam(schedule), loss=loss, metrics=["accuracy"])
    one_hot = np.eye(n_labels, dtype=np.float32)
    train = (tf.data.Dataset.from_tensor_slices(
        (x_train[..., None], one_hot[y_train], w_train.astype(np.float32)))
        .shuffle(len(x_train), seed=settings.seed, reshuffle_each_iteration=True)
        .batch(settings.batch_size)
        .map(lambda x, y, w: (tf.cast(x, tf.float32), y, w))
        .prefetch(2))
    val = (tf.data.Dataset.from_tensor_slices((x_val[..., None], one_hot[y_val]))
           .batch(512).map(lambda x, y: (tf.cast(x, tf.float32), y)))
    stop = tf.keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=settings.patience,
                                            restore_best_weights=True, mode="max")
    history = model.fit(train, validation_data=val, epochs=settings.epochs, callbacks=[stop],
                        verbose=verbose)
    log.info("trained %s: %d params, best val accuracy %.3f", settings.architecture,
             model.count_params(), max(history.history["val_accuracy"]))
    return model, {k: [float(v) for v in vals] for k, vals in history.history.items()}, output
