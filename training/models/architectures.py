"""Keras model definitions: TC-ResNet (default on log-mel), DS-CNN, a dense head on speech
embeddings, and the article's CNN (compatibility)."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from training.models.settings import ARCHITECTURES, EMBEDDING_POOLINGS, ENSEMBLE_JOINS

keras = tf.keras
layers = keras.layers

BN_MOMENTUM = 0.9
"""Batch-norm statistics must settle within a few short epochs (Keras's 0.99 takes ~500 steps)."""


def ds_cnn(input_shape: tuple[int, int], n_labels: int, width: int = 64, blocks: int = 4,
           dropout: float = 0.2) -> keras.Model:
    """Depthwise-separable CNN after Zhang et al., "Hello Edge" (2017): ~25 k parameters.

    A strided 10x4 convolution, then `blocks` depthwise 3x3 + pointwise 1x1 pairs, global average
    pooling and a softmax. Every op has an int8 TFLite kernel.
    """
    inputs = keras.Input(shape=(*input_shape, 1), name="features")
    x = layers.Conv2D(width, (10, 4), strides=(2, 2), padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    x = layers.ReLU()(x)
    for _ in range(blocks):
        x = layers.DepthwiseConv2D((3, 3), padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
        x = layers.ReLU()(x)
        x = layers.Conv2D(width, (1, 1), use_bias=False)(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
        x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(n_labels, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="dscnn")


TC_RESNET_WIDTHS = (16, 24, 32, 48)
"""TC-ResNet8's channel widths at `TrainSettings.tcresnet_width` 1."""


def tc_resnet(input_shape: tuple[int, int], n_labels: int,
              widths: tuple[int, ...] = TC_RESNET_WIDTHS, kernel: int = 9,
              dropout: float = 0.2) -> keras.Model:
    """Temporal-convolution ResNet after Choi et al., "TC-ResNet" (Interspeech 2019).

    The mel bands are the channels of a 1-D convolution over time (written as (k, 1) 2-D
    convolutions, which every TFLite runtime has in int8): a few wide, cheap layers instead of
    many small 2-D ones. About 1.5 M multiply-adds per window, 5-20x less than the DS-CNN, so it
    runs in tens of microseconds on the node and trains several times faster.
    """
    frames, bands = input_shape
    inputs = keras.Input(shape=(*input_shape, 1), name="features")
    x = layers.Reshape((frames, 1, bands))(inputs)
    x = layers.Conv2D(widths[0], (3, 1), padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    x = layers.ReLU()(x)
    for width in widths[1:]:
        y = layers.Conv2D(width, (kernel, 1), strides=(2, 1), padding="same", use_bias=False)(x)
        y = layers.BatchNormalization(momentum=BN_MOMENTUM)(y)
        y = layers.ReLU()(y)
        y = layers.Conv2D(width, (kernel, 1), padding="same", use_bias=False)(y)
        y = layers.BatchNormalization(momentum=BN_MOMENTUM)(y)
        shortcut = layers.Conv2D(width, (1, 1), strides=(2, 1), use_bias=False)(x)
        shortcut = layers.BatchNormalization(momentum=BN_MOMENTUM)(shortcut)
        x = layers.ReLU()(layers.Add()([y, shortcut]))
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(n_labels, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="tcresnet")


def embedding_dnn(input_shape: tuple[int, int], n_labels: int, width: int = 64,
                  dropout: float = 0.3, pooling: str = "mean") -> keras.Model:
    """A small fully-connected head on speech-embedding features (openWakeWord's design).

    The pre-trained embedding already says what was spoken; the head averages the window's
    few embeddings (each covers 775 ms, 50 ms apart: nearly the same view) and maps them to
    labels: 11 k parameters, so that beside the TC-ResNet an ensemble stays under 100 KB.
    Batch norm (folded into the dense layers at export) keeps every op an int8 TFLite kernel.
    `pooling="flatten"` keeps the embeddings in order instead of averaging them.
    """
    if pooling not in EMBEDDING_POOLINGS:
        raise ValueError(f"unknown embedding pooling {pooling!r}; one of {EMBEDDING_POOLINGS}")
    steps, size = input_shape
    inputs = keras.Input(shape=(*input_shape, 1), name="embeddings")
    if pooling == "flatten":
        x = layers.Reshape((steps * size,))(inputs)
    else:
        x = layers.GlobalAveragePooling2D()(layers.Reshape((steps, 1, size))(inputs))
    for _ in range(2):
        x = layers.Dense(width, use_bias=False)(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
        x = layers.ReLU()(x)
        x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(n_labels, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="embedding_dnn")


def member_logits(member: keras.Model, temperature: float = 1.0) -> keras.Model:
    """The member's scores before its softmax, divided by `temperature`: its body, then a
    linear copy of its output layer (weights / temperature: no extra op), so members trained
    with a softmax head can be joined on logits."""
    head = member.get_layer("probabilities")
    body = keras.Model(member.inputs, head.input, name=f"{member.name}_body")
    linear = layers.Dense(head.units, name=f"{member.name}_logits")
    outputs = linear(body.outputs[0])
    linear.set_weights([w / temperature for w in head.get_weights()])
    return keras.Model(member.inputs, outputs, name=f"{member.name}_scores")


def ensemble(members: list[keras.Model], part_shapes: list[tuple[int, ...]],
             join: str = "geometric", temperature: float = 1.0) -> keras.Model:
    """One model over concat features: each member reads its own slice (reshaped to the
    member's input) and their outputs are joined.

    `geometric`: the softmax of the members' averaged logits divided by `temperature`, i.e.
    the normalised geometric mean of their probabilities, to the power 1 / `temperature`; a
    command scores high only when both members agree, which finds more commands at few false
    activations (BENCHMARKS.md). The temperature changes no ranking, only which threshold
    gives which trade-off. `mean`: their probabilities averaged (kws-default 2.0.0-2.1.0)."""
    if join not in ENSEMBLE_JOINS:
        raise ValueError(f"unknown ensemble join {join!r}; one of {ENSEMBLE_JOINS}")
    if temperature <= 0:
        raise ValueError(f"ensemble temperature must be > 0, got {temperature}")
    width = sum(int(np.prod(shape)) for shape in part_shapes)
    inputs = keras.Input(shape=(width, 1), name="features")
    outputs, offset = [], 0
    for member, shape in zip(members, part_shapes, strict=True):
        size = int(np.prod(shape))
        part = layers.Cropping1D((offset, width - offset - size))(inputs)
        scorer = member_logits(member, temperature) if join == "geometric" else member
        outputs.append(scorer(layers.Reshape((*shape, 1))(part)))
        offset += size
    if join == "geometric":
        joined = layers.Softmax(name="probabilities")(layers.Average(name="logits")(outputs))
    else:
        joined = layers.Average(name="probabilities")(outputs)
    return keras.Model(inputs, joined, name="ensemble")


def isolation_cnn(input_shape: tuple[int, int], n_labels: int, width: int = 16,
                  dropout: float = 0.3) -> keras.Model:
    """The isolation check's model (`edge_node.isolation`): three strided temporal
    convolutions over a 2 s log-mel window, then one dense layer over every position, since
    WHERE the speech is (only around the word, or before and after it too) is the answer.
    About 6,000 parameters: a few kilobytes in int8, run only when the classifier fires."""
    frames, bands = input_shape
    inputs = keras.Input(shape=(*input_shape, 1), name="features")
    x = layers.Reshape((frames, 1, bands))(inputs)
    for _ in range(3):
        x = layers.Conv2D(width, (5, 1), strides=(2, 1), activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(n_labels, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="isolation_cnn")


def article_cnn(input_shape: tuple[int, int], n_labels: int,
                normaliser_data: Any | None = None) -> keras.Model:
    """The CNN of TensorFlow's "simple audio" tutorial as the article trained it (logits out).

    Resizing to 32x32, a Normalization layer adapted to the training spectrograms, two 3x3
    convolutions, max-pooling, dropout, Dense(128) and a Dense logits layer: 1.6 M parameters
    for 8 labels.
    """
    normaliser = layers.Normalization()
    if normaliser_data is not None:
        normaliser.adapt(normaliser_data)
    inputs = keras.Input(shape=(*input_shape, 1), name="spectrogram")
    x = layers.Resizing(32, 32)(inputs)
    x = normaliser(x)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(n_labels, name="logits")(x)
    return keras.Model(inputs, outputs, name="article_cnn")


def build(architecture: str, input_shape: tuple[int, int], n_labels: int,
          normaliser_data: Any | None = None, tcresnet_width: float = 1.0,
          embedding_width: int = 64, embedding_pooling: str = "mean") -> tuple[keras.Model, str]:
    """The model and the kind of output it produces (`probabilities` or `logits`)."""
    if architecture == "tcresnet":
        widths = tuple(max(1, round(w * tcresnet_width)) for w in TC_RESNET_WIDTHS)
        return tc_resnet(input_shape, n_labels, widths=widths), "probabilities"
    if architecture == "dscnn":
        return ds_cnn(input_shape, n_labels), "probabilities"
    if architecture == "embedding_dnn":
        return (embedding_dnn(input_shape, n_labels, width=embedding_width,
                              pooling=embedding_pooling), "probabilities")
    if architecture == "article_cnn":
        return article_cnn(input_shape, n_labels, normaliser_data), "logits"
    raise ValueError(f"unknown architecture {architecture!r}; use one of {ARCHITECTURES}")
