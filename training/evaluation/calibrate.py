"""The threshold a model ships with, chosen on people it never heard.

Like ESPHome's micro_wake_word manifests carry `probability_cutoff`, a model's manifest carries
the detector threshold that finds the most commands at no more than a stated rate of false
activations per hour. It is chosen by the node's own detector swept over the evaluation
recordings of held-out people (`kws-train people-stream`): the `people` recording (commands,
other words and talk) for recall, pooled with the `talk` recording (held-out continuous talk)
for the false activations. The node uses it unless node.yaml or Home Assistant sets one.
The sweep runs the node's isolation check (`edge_node.isolation`) as the node does, so the
threshold is the one that suits the classifier WITH the check; which check is recorded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_node.isolation import DEFAULT_ISOLATION_MODEL
from edge_node.model import manifest_path, read_manifest
from training.evaluation.metrics import streaming_scores
from training.evaluation.node_eval import node_sweep

log = logging.getLogger(__name__)

THRESHOLDS = tuple(round(0.3 + 0.025 * i, 3) for i in range(27))
"""The thresholds swept: 0.3 to 0.95."""
MAX_FALSE_PER_HOUR = 2.0
"""The false-activation rate a shipped threshold is chosen for (issue 22's target)."""


def sweep_recordings(model: Path, recordings: Sequence[Path], commands: Sequence[str],
                     thresholds: Sequence[float] = THRESHOLDS,
                     isolation: Path | None = DEFAULT_ISOLATION_MODEL) -> list[dict[str, Any]]:
    """Per threshold: recall over every command of the recordings and false activations per
    hour over all of their time (with the isolation check of `isolation`; None: without)."""
    per_recording = []
    for recording in recordings:
        meta = json.loads(recording.with_suffix(".json").read_text())
        found = node_sweep(model, recording, thresholds, isolation)
        per_recording.append({t: streaming_scores(found[float(t)], meta["events"],
                                                  meta["duration_s"], commands)
                              for t in thresholds})
    return [pool_scores(float(t), [r[t] for r in per_recording]) for t in thresholds]


def pool_scores(threshold: float, scored: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One sweep row from several runs' `streaming_scores` at `threshold` (recordings, or
    fold models): recall over all their commands, false activations over all their time."""
    detected = sum(s["detected"] for s in scored)
    commands_total = sum(s["commands"] for s in scored)
    false = sum(s["false_activations"] for s in scored)
    hours = sum(s["duration_s"] for s in scored) / 3600.0
    return {"threshold": threshold,
            "recall": detected / commands_total if commands_total else None,
            "detected": detected,
            "commands": commands_total,
            "false_activations": false,
            "false_activations_per_hour": false / hours,
            "hours": hours,
            "per_recording": [{"false_activations": s["false_activations"],
                               "hours": s["duration_s"] / 3600.0} for s in scored]}


def choose_threshold(rows: Sequence[dict[str, Any]],
                     max_false_per_hour: float = MAX_FALSE_PER_HOUR) -> dict[str, Any]:
    """The row with the best recall whose false activations stay within the rate (the
    lowest such threshold on ties); the strictest swept threshold when none does."""
    within = [r for r in rows if r["false_activations_per_hour"] <= max_false_per_hour]
    if not within:
        return max(rows, key=lambda r: r["threshold"])
    return max(within, key=lambda r: (r["recall"] or 0.0, -r["threshold"]))


def calibrate(model: Path, recordings: Sequence[Path], commands: Sequence[str],
              max_false_per_hour: float = MAX_FALSE_PER_HOUR,
              isolation: Path | None = DEFAULT_ISOLATION_MODEL) -> dict[str, Any]:
    """Sweep, choose, and write the threshold into the model's manifest; returns the
    calibration record (also kept in the manifest). With the isolation check of `isolation`
    in the loop, at its own threshold, as the node runs it (None: without the check)."""
    rows = sweep_recordings(model, recordings, commands, isolation=isolation)
    chosen = choose_threshold(rows, max_false_per_hour)
    calibration = {
        "isolation": None if isolation is None else isolation_in_force(isolation),
        "threshold": chosen["threshold"],
        "max_false_activations_per_hour": max_false_per_hour,
        "recall": chosen["recall"],
        "false_activations_per_hour": round(chosen["false_activations_per_hour"], 3),
        "recordings": [r.name for r in recordings],
        "hours": round(chosen["hours"], 3),
        "sweep": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()
                   if k != "hours"} for r in rows],
    }
    path = manifest_path(model)
    manifest = json.loads(path.read_text())
    manifest["detector"] = {"threshold": chosen["threshold"]}
    manifest["calibration"] = {k: v for k, v in calibration.items() if k != "sweep"}
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("calibrated %s: threshold %.3f, recall %.1f%% at %.2f false activations per hour "
             "(%s)", model.name, chosen["threshold"], 100 * (chosen["recall"] or 0),
             chosen["false_activations_per_hour"], ", ".join(r.name for r in recordings))
    return calibration


def isolation_in_force(isolation: Path) -> dict[str, Any]:
    """Which isolation check a calibration was made with, and at which threshold."""
    manifest = read_manifest(isolation)
    return {"model": f"{manifest.name} {manifest.version}", "sha256": manifest.sha256,
            "threshold": manifest.threshold}


def plot_tradeoff(calibration: dict[str, Any], path: Path, title: str) -> Path:
    """Recall against false activations per hour along the sweep, the chosen point marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = calibration["sweep"]
    fa = np.array([r["false_activations_per_hour"] for r in rows])
    recall = np.array([100 * (r["recall"] or 0) for r in rows])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(fa, recall, marker="o", markersize=3)
    for r, x, y in zip(rows, fa, recall, strict=True):
        if round(r["threshold"] * 20) == r["threshold"] * 20:  # label every 0.05
            ax.annotate(f"{r['threshold']:.2f}", (x, y), fontsize=7, xytext=(3, -9),
                        textcoords="offset points")
    ax.axvline(calibration["max_false_activations_per_hour"], color="grey", linestyle=":")
    ax.plot([calibration["false_activations_per_hour"]], [100 * (calibration["recall"] or 0)],
            marker="*", markersize=14, color="red",
            label=f"shipped threshold {calibration['threshold']:.3f}")
    ax.set_xlabel("false activations per hour (held-out people + held-out talk)")
    ax.set_ylabel("commands found (%)")
    ax.set_title(title)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
