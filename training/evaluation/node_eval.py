"""Score an exported model in the node's own runtime and streaming detector, in a separate process.

Re-evaluating the `.tflite` (not the Keras model) catches conversion and quantisation damage.
It runs in a child process with EDGE_NODE_TFLITE_RUNTIME set, so each runtime is measured
as the node would load it, and no TensorFlow is imported next to tflite-runtime (which then
fails to create interpreters).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge_node.isolation import DEFAULT_ISOLATION_MODEL
from edge_node.model import manifest_path


def predict_in_runtime(model: Path, features: np.ndarray, runtime: str) -> np.ndarray:
    """Probabilities for each feature matrix, computed by `edge_node.model.Model` in `runtime`."""
    with tempfile.TemporaryDirectory() as tmp:
        inputs, outputs = Path(tmp) / "x.npy", Path(tmp) / "p.npy"
        np.save(inputs, features.astype(np.float32))
        env = {**os.environ, "EDGE_NODE_TFLITE_RUNTIME": runtime}
        subprocess.run([sys.executable, "-m", "training.evaluation.node_eval", str(model),
                        str(inputs), str(outputs)], check=True, env=env)
        return np.load(outputs)


def streaming_evaluation(model: Path, recording: Path, commands: Sequence[str],
                         isolation: Path | None = DEFAULT_ISOLATION_MODEL) -> dict:
    """Run the recording through the node's own detector (`edge-node detect`, with the
    isolation check of `isolation`; None: without) and score it; also says which engines
    speak in it and which of them the model never trained on."""
    from training.evaluation.metrics import streaming_scores

    events = json.loads(recording.with_suffix(".json").read_text())
    result = streaming_scores(node_detections(model, recording, isolation=isolation),
                              events["events"],
                              events["duration_s"], commands)
    spoken = events.get("engines") or sorted({e["engine"] for e in events["events"]
                                             if "engine" in e})
    manifest = manifest_path(model)
    trained = json.loads(manifest.read_text()).get("engines", []) if manifest.is_file() else []
    # None: the manifest does not list its training engines, so nobody can say
    return {**result, "recording": recording.name, "engines": list(spoken),
            "unseen_engines": sorted(set(spoken) - set(trained)) if trained else None}


def node_detections(model: Path, recording: Path, threshold: float | None = None,
                    isolation: Path | None = DEFAULT_ISOLATION_MODEL) -> list[dict]:
    """What the node's own streaming detector reports on a recording (`edge-node detect`),
    with the isolation check of `isolation` (None: without)."""
    extra = ["--threshold", str(threshold)] if threshold is not None else []
    out = subprocess.run([sys.executable, "-m", "edge_node", "detect", str(recording), "--model",
                          str(model), "--json", *extra, *isolation_args(isolation)],
                         check=True, capture_output=True, text=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def isolation_args(isolation: Path | None) -> list[str]:
    """`edge-node detect`'s options for this isolation model (None: the check off)."""
    return ["--no-isolation"] if isolation is None else ["--isolation-model", str(isolation)]


def node_sweep(model: Path, recording: Path, thresholds: Sequence[float],
               isolation: Path | None = DEFAULT_ISOLATION_MODEL) -> dict[float, list[dict]]:
    """`node_detections` at each threshold, from one pass of the model (`edge-node detect
    --sweep`: the node's detector decides again on the posteriors it recorded), with the
    isolation check of `isolation` at its own threshold (None: without the check)."""
    out = subprocess.run([sys.executable, "-m", "edge_node", "detect", str(recording), "--model",
                          str(model), "--json", "--sweep", ",".join(map(str, thresholds)),
                          *isolation_args(isolation)],
                         check=True, capture_output=True, text=True)
    found: dict[float, list[dict]] = {float(t): [] for t in thresholds}
    for line in out.stdout.splitlines():
        if line.strip():
            detection = json.loads(line)
            found[float(detection.pop("threshold"))].append(detection)
    return found


def main(argv: list[str]) -> None:
    from edge_node.model import Model

    model_path, inputs, outputs = argv
    model = Model(Path(model_path))
    features = np.load(inputs)
    probs = np.stack([model.predict_features(row) for row in features]) if len(features) else (
        np.zeros((0, len(model.labels)), dtype=np.float32))
    np.save(outputs, probs)


if __name__ == "__main__":
    main(sys.argv[1:])
