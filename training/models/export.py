"""Keras model -> float32 or full-integer int8 `.tflite` with the manifest the node expects."""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edge_node.features import FeatureSpec
from edge_node.model import Manifest, file_sha256, write_manifest

log = logging.getLogger(__name__)


def convert(model: Any, representative: np.ndarray | None) -> bytes:
    """TFLite flatbuffer; with `representative` features, every op int8 (full-integer).

    The int8 model keeps a float32 interface: its first and last ops quantise and dequantise in
    the runtime's C code, which costs the node less per window than doing it in numpy.

    Goes through a Keras export archive with a fixed batch-1 signature: converting a concrete
    function directly leaves resource variables that int8 calibration cannot read. Tensor and
    signature names are stripped (TensorFlow's `flatbuffer_utils.strip_strings`): the node
    addresses tensors by index, and nested models' fused op names cost kilobytes (7 KB of the
    ensemble's 104 KB).
    """
    import tensorflow as tf

    shape = [1, *model.input_shape[1:]]

    def samples():
        for row in representative:
            yield [row.reshape(shape).astype(np.float32)]

    with tempfile.TemporaryDirectory() as saved:
        archive = tf.keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", lambda x: model(x, training=False),
                             input_signature=[tf.TensorSpec(shape, tf.float32)])
        archive.write_out(saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        if representative is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = samples
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        flatbuffer = converter.convert()
    from tensorflow.lite.tools import flatbuffer_utils

    stripped = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    flatbuffer_utils.strip_strings(stripped)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(stripped))


def representative_sample(x: np.ndarray, seed: int, size: int = 400) -> np.ndarray:
    """The training examples int8 calibration sees: a fixed-seed draw of up to `size`."""
    rng = np.random.default_rng(seed)
    return x[rng.choice(len(x), min(size, len(x)), replace=False)]


def export(model: Any, out_path: Path, *, name: str, version: str, labels: list[str],
           features: FeatureSpec, output: str, representative: np.ndarray | None,
           extra: dict[str, Any] | None = None, threshold: float | None = None) -> Path:
    """Write `out_path` (.tflite) and its manifest; int8 when `representative` is given.
    `threshold`: the detector threshold the manifest recommends (None: none yet)."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(convert(model, representative))
    info = {
        "quantization": "int8" if representative is not None else "float32",
        "parameters": int(model.count_params()),
        "architecture": model.name,
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        **(extra or {}),
    }
    manifest = Manifest(name=name, version=version, labels=tuple(labels), features=features,
                        sha256=file_sha256(out_path), output=output, threshold=threshold,
                        extra=info)
    write_manifest(out_path, manifest)
    log.info("exported %s (%s, %d bytes)", out_path, info["quantization"],
             out_path.stat().st_size)
    return out_path
