"""Fitting a Keras model on feature sets: fixed seeds, early stopping on held-out voices."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np

from training.models.settings import ENSEMBLE_MEMBERS, TrainSettings

log = logging.getLogger(__name__)

def _weight_average_callback(momentum: float) -> Any:
    """A Keras callback keeping an exponential moving average of the model's weights.

    Validation runs on the averaged weights (swapped in and out around it); the best averaged
    weights by validation accuracy are kept and installed when training ends.
    """
    import tensorflow as tf

    class WeightAverage(tf.keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            self.average = [w.copy() for w in self.model.get_weights()]
            self.raw: list[np.ndarray] | None = None
            self.best: list[np.ndarray] | None = None
            self.best_accuracy = -1.0

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            for avg, w in zip(self.average, self.model.get_weights(), strict=True):
                avg *= momentum
                avg += (1.0 - momentum) * w

        def on_test_begin(self, logs: Any = None) -> None:
            self.raw = self.model.get_weights()
            self.model.set_weights(self.average)

        def on_test_end(self, logs: Any = None) -> None:
            if self.raw is not None:
                self.model.set_weights(self.raw)
                self.raw = None

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            accuracy = float((logs or {}).get("val_accuracy", -1.0))
            if accuracy > self.best_accuracy:
                self.best_accuracy = accuracy
                self.best = [w.copy() for w in self.average]

        def on_train_end(self, logs: Any = None) -> None:
            self.model.set_weights(self.best if self.best is not None else self.average)

    return WeightAverage()


def warp_features(x: Any, freq_warp: float, time_warp: float, seed: int) -> Any:
    """Random per-example linear stretches of a batch of (frames, bands, 1) features.

    Fresh factors every epoch cost nothing next to re-synthesising or re-augmenting audio, and
    make the model lean less on exact formant positions and durations, which differ most
    between TTS engines (and between people).
    """
    import tensorflow as tf

    def stretch(values: Any, factors: Any, anchor: float) -> Any:
        """Resample axis 1 of (batch, n, m) at positions anchor + (i - anchor) * factor."""
        n = tf.shape(values)[1]
        index = tf.cast(tf.range(n), tf.float32)[None, :]
        positions = anchor + (index - anchor) * factors[:, None]
        inside = tf.cast((positions >= 0.0) & (positions <= tf.cast(n - 1, tf.float32)),
                         values.dtype)
        positions = tf.clip_by_value(positions, 0.0, tf.cast(n - 1, tf.float32))
        low = tf.floor(positions)
        frac = (positions - low)[..., None]
        low_i = tf.cast(low, tf.int32)
        high_i = tf.minimum(low_i + 1, n - 1)
        below = tf.gather(values, low_i, axis=1, batch_dims=1)
        above = tf.gather(values, high_i, axis=1, batch_dims=1)
        return (below * (1.0 - frac) + above * frac) * inside[..., None]

    batch = tf.shape(x)[0]
    frames = tf.cast(tf.shape(x)[1], tf.float32)
    y = x[..., 0]
    if time_warp > 0:
        factors = tf.random.uniform([batch], 1.0 - time_warp, 1.0 + time_warp, seed=seed)
        y = stretch(y, factors, (frames - 1.0) / 2.0)
    if freq_warp > 0:
        factors = tf.random.uniform([batch], 1.0 - freq_warp, 1.0 + freq_warp, seed=seed + 1)
        y = tf.transpose(stretch(tf.transpose(y, [0, 2, 1]), factors, 0.0), [0, 2, 1])
    return y[..., None]


def mask_features(x: Any, max_frames: int, max_bands: int, seed: int, masks: int = 2) -> Any:
    """SpecAugment on a batch of (frames, bands, 1) features: `masks` time and `masks`
    frequency stripes of random width (up to the maximum) set to 0, the window mean of
    normalised features.

    Fresh stripes every epoch keep any one stretch of a word or band of its spectrum from
    deciding the class, since an unfamiliar voice differs from the training voices in a few
    formant regions and sounds. It does help on unseen engines, but a model that decides from
    part of a word found fewer commands in streaming (BENCHMARKS.md), so it is an option.
    """
    import tensorflow as tf

    def stripes(batch: Any, n: Any, max_width: int, seed_offset: int) -> Any:
        """(batch, n) float mask, 0 inside `masks` random stripes, 1 elsewhere."""
        keep = tf.ones([batch, n])
        index = tf.range(n)[None, :]
        for k in range(masks):
            width = tf.random.uniform([batch, 1], 0, max_width + 1, dtype=tf.int32,
                                      seed=seed + seed_offset + 2 * k)
            start = tf.cast(tf.random.uniform([batch, 1], seed=seed + seed_offset + 2 * k + 1)
                            * tf.cast(n - width + 1, tf.float32), tf.int32)
            inside = (index >= start) & (index < start + width)
            keep *= 1.0 - tf.cast(inside, tf.float32)
        return keep

    batch, frames, bands = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    if max_frames > 0:
        x = x * stripes(batch, frames, max_frames, 101)[:, :, None, None]
    if max_bands > 0:
        x = x * stripes(batch, bands, max_bands, 211)[:, None, :, None]
    return x


def mix_batch(x: Any, y: Any, w: Any, alpha: float, seed: int) -> tuple[Any, Any, Any]:
    """Mixup on one batch: each example blended with a random partner of the same batch by a
    share drawn from Beta(alpha, alpha), folded to >= 0.5 so each row stays mostly itself."""
    import tensorflow as tf

    batch = tf.shape(x)[0]
    first = tf.random.gamma([batch], alpha, seed=seed)
    second = tf.random.gamma([batch], alpha, seed=seed + 1)
    share = first / tf.maximum(first + second, 1e-12)
    share = tf.maximum(share, 1.0 - share)
    partner = tf.random.shuffle(tf.range(batch), seed=seed + 2)
    def blend(values: Any) -> Any:
        keep = tf.reshape(share, tf.concat([[batch], tf.ones([tf.rank(values) - 1], tf.int32)],
                                           axis=0))
        return values * keep + tf.gather(values, partner) * (1.0 - keep)
    return blend(x), blend(y), blend(w)


def set_seeds(seed: int) -> None:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)


def fit(x_train: np.ndarray, y_train: np.ndarray, w_train: np.ndarray, x_val: np.ndarray,
        y_val: np.ndarray, n_labels: int, settings: TrainSettings, verbose: int = 2,
        part_shapes: list[tuple[int, ...]] | None = None,
        targets: np.ndarray | None = None) -> tuple[Any, dict[str, list[float]], str]:
    """Train a fresh model; returns (model, history, output kind). An `ensemble` needs the
    `part_shapes` of its concat features. `targets` (one probability row per example)
    replace the one-hot labels as what the model learns."""
    if settings.distill_teachers > 0:
        targets = teacher_targets(x_train, y_train, w_train, x_val, y_val, n_labels, settings,
                                  verbose, part_shapes)
        settings = replace(settings, distill_teachers=0)
    if settings.architecture == "ensemble":
        return fit_ensemble(x_train, y_train, w_train, x_val, y_val, n_labels, settings,
                            verbose, part_shapes or [], targets)
    import tensorflow as tf

    from training.models.architectures import build

    set_seeds(settings.seed)
    input_shape = tuple(x_train.shape[1:3])
    sample = x_train[np.random.default_rng(settings.seed).choice(len(x_train),
                                                                  min(2000, len(x_train)))]
    model, output = build(settings.architecture, input_shape, n_labels,
                          normaliser_data=sample[..., None].astype(np.float32),
                          tcresnet_width=settings.tcresnet_width,
                          embedding_width=settings.embedding_width,
                          embedding_pooling=settings.embedding_pooling)
    steps = max(1, int(np.ceil(len(x_train) / settings.batch_size))) * settings.epochs
    schedule = tf.keras.optimizers.schedules.CosineDecay(settings.learning_rate, steps)
    loss = tf.keras.losses.CategoricalCrossentropy(
        from_logits=output == "logits", label_smoothing=settings.label_smoothing)
    model.compile(optimizer=tf.keras.optimizers.Adam(schedule), loss=loss, metrics=["accuracy"])
    one_hot = np.eye(n_labels, dtype=np.float32)
    wanted = one_hot[y_train] if targets is None else targets.astype(np.float32)
    train = (tf.data.Dataset.from_tensor_slices(
        (x_train[..., None], wanted, w_train.astype(np.float32)))
        .shuffle(len(x_train), seed=settings.seed, reshuffle_each_iteration=True)
        .batch(settings.batch_size)
        .map(lambda x, y, w: (tf.cast(x, tf.float32), y, w)))
    # Warping stretches a spectrogram's axes; an embedding's values have no such axes.
    warps = settings.architecture != "embedding_dnn"
    if warps and (settings.freq_warp > 0 or settings.time_warp > 0):
        train = train.map(lambda x, y, w: (
            warp_features(x, settings.freq_warp, settings.time_warp, settings.seed), y, w))
    if warps and (settings.mask_frames > 0 or settings.mask_bands > 0):
        train = train.map(lambda x, y, w: (
            mask_features(x, settings.mask_frames, settings.mask_bands, settings.seed), y, w))
    if settings.mixup > 0:
        train = train.map(lambda x, y, w: mix_batch(x, y, w, settings.mixup, settings.seed + 7))
    train = train.prefetch(2)
    val = (tf.data.Dataset.from_tensor_slices((x_val[..., None], one_hot[y_val]))
           .batch(512).map(lambda x, y: (tf.cast(x, tf.float32), y)))
    averaging = settings.weight_average > 0
    callbacks = [_weight_average_callback(settings.weight_average)] if averaging else []
    callbacks.append(tf.keras.callbacks.EarlyStopping(
        monitor="val_accuracy", patience=settings.patience, restore_best_weights=not averaging,
        mode="max"))
    history = model.fit(train, validation_data=val, epochs=settings.epochs, callbacks=callbacks,
                        verbose=verbose)
    log.info("trained %s: %d params, best val accuracy %.3f", settings.architecture,
             model.count_params(), max(history.history["val_accuracy"]))
    return model, {k: [float(v) for v in vals] for k, vals in history.history.items()}, output


def fit_ensemble(x_train: np.ndarray, y_train: np.ndarray, w_train: np.ndarray,
                 x_val: np.ndarray, y_val: np.ndarray, n_labels: int, settings: TrainSettings,
                 verbose: int, part_shapes: list[tuple[int, ...]],
                 targets: np.ndarray | None = None) -> tuple[Any, dict[str, list[float]], str]:
    """Each member trained on its own part of the concat features, as a model of its own, then
    joined into one model (`settings.ensemble_join`).

    Trained apart, the members stay different: the log-mel TC-ResNet is the sharper on voices
    like its training voices, the speech-embedding head on voices unlike them, and their errors
    differ (measured in BENCHMARKS.md)."""
    from training.models.architectures import ensemble

    if len(part_shapes) != len(ENSEMBLE_MEMBERS):
        raise ValueError(f"an ensemble needs {len(ENSEMBLE_MEMBERS)} feature parts, "
                         f"got {part_shapes}")
    members, history = [], {}
    offset = 0
    for architecture, shape in zip(ENSEMBLE_MEMBERS, part_shapes, strict=True):
        size = int(np.prod(shape))
        def part(x: np.ndarray, start: int = offset, end: int = offset + size,
                 shape: tuple[int, ...] = shape) -> np.ndarray:
            return x[:, start:end].reshape(-1, *shape)
        model, member_history, _ = fit(part(x_train), y_train, w_train, part(x_val), y_val,
                                       n_labels, replace(settings, architecture=architecture),
                                       verbose, targets=targets)
        members.append(model)
        history.update({f"{architecture}_{k}": v for k, v in member_history.items()})
        offset += size
    joined = ensemble(members, part_shapes, settings.ensemble_join,
                      settings.ensemble_temperature)
    return joined, history, "probabilities"


def teacher_targets(x_train: np.ndarray, y_train: np.ndarray, w_train: np.ndarray,
                    x_val: np.ndarray, y_val: np.ndarray, n_labels: int,
                    settings: TrainSettings, verbose: int,
                    part_shapes: list[tuple[int, ...]] | None) -> np.ndarray:
    """Targets for distillation: the labels mixed with the averaged probabilities of
    `settings.distill_teachers` models trained on the same data with other seeds."""
    teacher_settings = replace(settings, distill_teachers=0)
    probs = np.zeros((len(x_train), n_labels), dtype=np.float64)
    for k in range(settings.distill_teachers):
        teacher, _, output = fit(x_train, y_train, w_train, x_val, y_val, n_labels,
                                 replace(teacher_settings, seed=settings.seed * 1000 + k + 1),
                                 verbose, part_shapes)
        got = teacher.predict(x_train[..., None].astype(np.float32), batch_size=512,
                              verbose=0).astype(np.float64)
        if output == "logits":
            got = np.exp(got - got.max(axis=1, keepdims=True))
            got /= got.sum(axis=1, keepdims=True)
        probs += got / settings.distill_teachers
        log.info("teacher %d/%d: train accuracy %.3f", k + 1, settings.distill_teachers,
                 float(np.mean(got.argmax(axis=1) == y_train)))
    one_hot = np.eye(n_labels)[y_train]
    return (settings.distill_weight * probs
            + (1 - settings.distill_weight) * one_hot).astype(np.float32)
