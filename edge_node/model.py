"""The classifier model and its manifest (the runtime shim is `edge_node.runtime`).

The node never imports TensorFlow. The interpreter is created once per model and reused for
every window (the article rebuilt it for each inference). Each ``model.tflite`` has a
``model.json`` manifest beside it naming its labels and feature profile; the node checks the
manifest against the model's tensors at load and refuses a model that disagrees.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_node.features import (
    FeatureConfigError,
    FeatureExtractor,
    FeatureSpec,
    StreamingFeatures,
    make_extractor,
)
from edge_node.runtime import RuntimeUnavailableError, load_interpreter_class
from edge_node.setting import check_finite_tree

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1
OUTPUT_KINDS = ("probabilities", "logits")
DEFAULT_MODEL = Path(__file__).parent / "models" / "default.tflite"
NON_COMMAND_LABELS = frozenset({"_unknown_", "_silence_", "unknown", "silence"})
"""A model's labels for everything that is not a command; ask `Manifest.is_command`."""


class ModelError(RuntimeError):
    """A model that cannot be used: missing, corrupt, or disagreeing with its manifest."""


@dataclass(frozen=True)
class Manifest:
    """What the node must know about a model; stored as JSON beside the .tflite file."""

    name: str
    """Human-readable model name."""
    version: str
    """Model version, shown in Home Assistant and used by OTA updates."""
    labels: tuple[str, ...]
    """Output labels in output-tensor order; `_unknown_` / `_silence_` are never reported."""
    features: FeatureSpec
    """Feature profile and parameters the model was trained on."""
    sha256: str = ""
    """Hex digest of the .tflite file; checked at load when present."""
    output: str = "probabilities"
    """`probabilities` (softmax in the model) or `logits` (the article's model)."""
    threshold: float | None = None
    """The detector threshold the model was calibrated for (`detector.threshold`: the most
    commands found on held-out people at a stated false-activation rate); None: not
    calibrated, the node's default applies."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything else (training data, metrics); kept as-is."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        if not isinstance(data, dict):
            raise ModelError("manifest must be a JSON object")
        missing = [k for k in ("name", "version", "labels", "features") if k not in data]
        if missing:
            raise ModelError(f"manifest lacks required keys: {', '.join(missing)}")
        try:
            check_finite_tree(data, "manifest")
        except ValueError as exc:
            raise ModelError(str(exc)) from None
        labels = data["labels"]
        if not isinstance(labels, list) or not labels or not all(
            isinstance(x, str) and x for x in labels
        ):
            raise ModelError("manifest 'labels' must be a non-empty list of strings")
        if len(set(labels)) != len(labels):
            raise ModelError("manifest 'labels' has duplicates")
        output = data.get("output", "probabilities")
        if output not in OUTPUT_KINDS:
            raise ModelError(f"manifest 'output' must be one of {OUTPUT_KINDS}, not {output!r}")
        try:
            features = FeatureSpec.from_json(data["features"])
        except FeatureConfigError as exc:
            raise ModelError(str(exc)) from exc
        known = {"name", "version", "labels", "features", "sha256", "output", "format",
                 "detector"}
        return cls(
            name=str(data["name"]),
            version=str(data["version"]),
            labels=tuple(labels),
            features=features,
            sha256=str(data.get("sha256", "")),
            output=output,
            threshold=calibrated_threshold(data.get("detector")),
            extra={k: v for k, v in data.items() if k not in known},
        )

    @staticmethod
    def is_command(label: str) -> bool:
        """Whether a label is a command (reported, announced, trained and scored as one)."""
        return label not in NON_COMMAND_LABELS

    @property
    def commands(self) -> tuple[str, ...]:
        """The labels that are commands, in output order."""
        return tuple(label for label in self.labels if self.is_command(label))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "name": self.name,
            "version": self.version,
            "labels": list(self.labels),
            "features": self.features.to_json(),
            "output": self.output,
            "sha256": self.sha256,
            **({"detector": {"threshold": self.threshold}} if self.threshold is not None else {}),
            **self.extra,
        }


def calibrated_threshold(detector: Any) -> float | None:
    """The manifest's `detector.threshold`, checked against the limits of the node's own
    threshold setting; None when absent."""
    from edge_node.detector import DetectorSettings  # the detector imports this module
    from edge_node.setting import meta

    if detector is None:
        return None
    if not isinstance(detector, dict):
        raise ModelError("manifest 'detector' must be an object, e.g. {\"threshold\": 0.55}")
    value = detector.get("threshold")
    if value is None:
        return None
    limits = meta(DetectorSettings, "threshold")
    if isinstance(value, bool) or not isinstance(value, int | float) or not limits.allows(value):
        raise ModelError(f"manifest detector.threshold must be a number "
                         f"{limits.describe()}, not {value!r}")
    return float(value)


def manifest_path(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".json")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(model_path: Path) -> Manifest:
    path = manifest_path(model_path)
    if not path.is_file():
        raise ModelError(f"model manifest {path} is missing (every .tflite needs its .json)")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"model manifest {path} is not valid JSON: {exc}") from exc
    return Manifest.from_json(data)


def write_manifest(model_path: Path, manifest: Manifest) -> Path:
    path = manifest_path(model_path)
    path.write_text(json.dumps(manifest.to_json(), indent=2) + "\n")
    return path


class Model:
    """A loaded, verified model: features in, label probabilities out."""

    def __init__(self, path: Path | str = DEFAULT_MODEL, runtime: str | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"model file {self.path} does not exist")
        self.manifest = read_manifest(self.path)
        if self.manifest.sha256 and file_sha256(self.path) != self.manifest.sha256:
            raise ModelError(f"{self.path}: sha256 does not match its manifest (corrupt?)")
        try:
            self.runtime, interpreter_class = load_interpreter_class(runtime)
        except RuntimeUnavailableError as exc:
            raise ModelError(str(exc)) from exc
        try:
            self.features: FeatureExtractor = make_extractor(self.manifest.features, self.runtime)
        except FeatureConfigError as exc:
            raise ModelError(f"{self.path}: {exc}") from exc
        try:
            self.interpreter = interpreter_class(model_path=str(self.path), num_threads=1)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{self.path} is not a loadable TFLite model: {exc}") from exc
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self._check_shapes()
        self.labels = self.manifest.labels

    def _check_shapes(self) -> None:
        in_shape = tuple(int(d) for d in self._input["shape"])
        want = self.features.shape
        core = tuple(d for d in in_shape[1:] if d != 1) if len(in_shape) > 1 else ()
        if in_shape[0] != 1 or core != tuple(d for d in want if d != 1):
            raise ModelError(
                f"{self.path}: model input shape {list(in_shape)} does not fit feature profile "
                f"{self.manifest.features.profile} {list(want)}"
            )
        out_shape = tuple(int(d) for d in self._output["shape"])
        if out_shape[-1] != len(self.manifest.labels) or int(np.prod(out_shape)) != out_shape[-1]:
            raise ModelError(
                f"{self.path}: model output shape {list(out_shape)} does not match the "
                f"{len(self.manifest.labels)} labels of its manifest"
            )
        self._input_shape = in_shape
        self._quant_buffer = np.zeros(in_shape, dtype=np.float32)

    @property
    def clip_samples(self) -> int:
        """Audio the model hears at once (its window)."""
        return self.features.clip_samples

    @property
    def frame_step(self) -> int:
        """Hops must be a multiple of this many samples (the features' frame step)."""
        return self.features.frame_step

    def stream(self) -> ModelStream:
        """Listen to a live stream: audio hops in, scores out."""
        return ModelStream(self)

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self._input["dtype"])

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        """Probabilities (float32, one per label) for one feature matrix.

        Quantises into a buffer kept between calls: this runs on every hop of the live node.
        """
        x = np.asarray(features, dtype=np.float32).reshape(self._input_shape)
        dtype = self.input_dtype
        if dtype != np.float32:
            scale, zero = self._input["quantization"]
            info = np.iinfo(dtype)
            buffer = self._quant_buffer
            np.multiply(x, np.float32(1.0 / scale), out=buffer)
            buffer += np.float32(zero)
            np.rint(buffer, out=buffer)
            np.clip(buffer, info.min, info.max, out=buffer)
            x = buffer.astype(dtype)
        self.interpreter.set_tensor(self._input["index"], x)
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self._output["index"]).reshape(-1)
        out_scale, out_zero = self._output["quantization"]
        y = y.astype(np.float32)
        if out_scale:
            y = (y - out_zero) * out_scale
        if self.manifest.output == "logits":
            y = np.exp(y - y.max())
            y /= y.sum()
        return y

    def predict_waveform(self, waveform: np.ndarray) -> np.ndarray:
        return self.predict_features(self.features.compute(waveform))


class ModelStream:
    """A model listening to a live stream: callers push audio hops and ask for scores; the
    incremental features in between are the model's own business (as openWakeWord's model owns
    its preprocessor), so a model with other features drops in unchanged."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self._features: StreamingFeatures = model.features.stream()

    def push(self, hop: np.ndarray) -> None:
        self._features.push(hop)

    @property
    def samples_seen(self) -> int:
        return self._features.samples_seen

    @property
    def heard_a_window(self) -> bool:
        """Before a whole window of real audio, the features would mix the empty ring with
        sound: not what the model was trained on."""
        return self._features.samples_seen >= self.model.clip_samples

    def window_audio(self) -> np.ndarray:
        """The last window of audio (zeros before the stream started)."""
        return self._features.window_audio()

    def scores(self) -> np.ndarray:
        """Probabilities (one per label) for the current window."""
        return self.model.predict_features(self._features.features())
