"""A tiny real TFLite model that "hears a command" whenever the window is loud.

The service and fault tests exercise the node's plumbing (signals, watchdog, reconnects), not
its accuracy, so they use this model instead of the bundled one: it loads in milliseconds, it
is built without TensorFlow (the flatbuffer schema shipped with ai-edge-litert), and it fires
on every spoken word of a recording, whatever the trained model's quality is today.
The graph is one FULLY_CONNECTED layer on un-normalised log-mel features and a SOFTMAX; only
the `stop` row has weights: logit = a * mean(log-mel) + b, calibrated on the recording so
that spoken words reach about 0.9 but never 0.99 (a threshold of 0.99 silences it).
"""

from __future__ import annotations

import json
from pathlib import Path

import flatbuffers
import numpy as np
import pytest

from edge_node.audio import read_wav_mono16k
from edge_node.features import logmel_spec, make_extractor

schema = pytest.importorskip("ai_edge_litert.schema_py_generated")

LABELS = ["go", "down", "up", "stop", "yes", "left", "right", "no", "_unknown_", "_silence_"]
SPEC = logmel_spec(normalisation="none")


def _tensor(name: str, shape: list[int], buffer: int) -> object:
    t = schema.TensorT()
    t.name, t.shape, t.type, t.buffer = name.encode(), shape, schema.TensorType.FLOAT32, buffer
    return t


def _buffer(data: np.ndarray | None = None) -> object:
    b = schema.BufferT()
    b.data = None if data is None else np.frombuffer(data.astype("<f4").tobytes(), np.uint8)
    return b


def _op(code: int, inputs: list[int], outputs: list[int]) -> object:
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = code, inputs, outputs
    return op


def build_tflite(weights: np.ndarray, bias: np.ndarray, shape: tuple[int, int]) -> bytes:
    """FULLY_CONNECTED(input [1, *shape]) -> SOFTMAX -> [1, labels] as .tflite bytes."""
    n = len(bias)
    codes = []
    for builtin in (schema.BuiltinOperator.FULLY_CONNECTED, schema.BuiltinOperator.SOFTMAX):
        c = schema.OperatorCodeT()
        c.builtinCode = c.deprecatedBuiltinCode = builtin
        c.version = 1
        codes.append(c)
    graph = schema.SubGraphT()
    graph.tensors = [_tensor("features", [1, *shape], 1),
                     _tensor("weights", [n, weights.shape[1]], 2), _tensor("bias", [n], 3),
                     _tensor("logits", [1, n], 4), _tensor("probabilities", [1, n], 5)]
    graph.inputs, graph.outputs = [0], [4]
    fc = _op(0, [0, 1, 2], [3])
    fc.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
    fc.builtinOptions = schema.FullyConnectedOptionsT()
    softmax = _op(1, [3], [4])
    softmax.builtinOptionsType = schema.BuiltinOptions.SoftmaxOptions
    softmax.builtinOptions = schema.SoftmaxOptionsT()
    softmax.builtinOptions.beta = 1.0
    graph.operators = [fc, softmax]
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, codes, [graph]
    model.buffers = [_buffer(), _buffer(), _buffer(weights), _buffer(bias), _buffer(), _buffer()]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def window_means(audio: np.ndarray, hop: int = 1600) -> np.ndarray:
    extractor = make_extractor(SPEC)
    starts = range(0, max(1, audio.size - extractor.clip_samples + 1), hop)
    return np.array([extractor.compute(audio[s : s + extractor.clip_samples]).mean()
                     for s in starts])


def loudness_model(folder: Path, recording: Path, version: str = "9.9.9") -> Path:
    """Write model.tflite + manifest whose `stop` fires on the words of `recording`."""
    means = window_means(read_wav_mono16k(recording))
    quiet, loud = np.percentile(means, 10), means.max()
    threshold = quiet + 0.3 * (loud - quiet)
    a = 6.0 / (loud - quiet)
    shape = make_extractor(SPEC).shape
    weights = np.zeros((len(LABELS), int(np.prod(shape))), dtype=np.float32)
    weights[LABELS.index("stop")] = a / weights.shape[1]
    bias = np.full(len(LABELS), -10.0, dtype=np.float32)
    bias[LABELS.index("stop")] = -a * threshold
    bias[LABELS.index("_silence_")] = 0.0
    path = folder / "loud.tflite"
    path.write_bytes(build_tflite(weights, bias, shape))
    manifest = {"format": 1, "name": "loudness", "version": version, "labels": LABELS,
                "features": SPEC.to_json(), "output": "probabilities"}
    path.with_suffix(".json").write_text(json.dumps(manifest))
    return path
