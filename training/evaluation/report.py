"""The evaluation report of a training run: Markdown, JSON and PNG plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_node.model import Manifest
from training.evaluation.metrics import recall_at


def plot_confusion(matrix: list[list[int]], labels: list[str], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(matrix, dtype=float)
    rows = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    image = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if m[i, j]:
                ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rows[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_history(history: dict[str, list[float]], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key, axis in (("loss", left), ("accuracy", right)):
        axis.plot(history.get(key, []), label="train")
        axis.plot(history.get(f"val_{key}", []), label="validation (held-out voices)")
        axis.set_xlabel("epoch")
        axis.set_ylabel(key)
        axis.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def candidate_comparison_table(bundled: Sequence[tuple[float, dict[str, Any]]],
                               candidate: Sequence[tuple[float, dict[str, Any]]]) -> list[str]:
    """Markdown rows: at each of the bundled model's operating points ((threshold,
    `streaming_scores`) rows of a sweep), both recalls at its false-activation rate (the
    candidate's interpolated along its own sweep by `recall_at`), and the difference. Two
    models differ in how peaked their scores are, so they are compared at equal false
    activations, not at one threshold (bench.streaming)."""
    lines = ["| bundled threshold | false activations per hour | bundled recall | "
             "candidate recall at that rate | difference (points) |", "|---|---|---|---|---|"]
    for threshold, s in bundled:
        fa, mine = s["false_activations_per_hour"], s["recall"]
        theirs = recall_at(candidate, fa)
        diff = "n/a" if theirs is None else f"{100 * (theirs - mine):+.1f}"
        lines.append(f"| {threshold:.2f} | {fa:.0f} | {pct(mine)} | {pct(theirs)} | {diff} |")
    return lines


def shipped(models: dict[str, Any]) -> dict[str, Any]:
    """The figures of the model a run ships: int8 when it was exported, else float32."""
    return models.get("int8/ai-edge-litert") or models["float32/ai-edge-litert"]


def engine_table(result: dict[str, Any]) -> list[str]:
    lines = ["| engine | command accuracy | `_unknown_` as command (argmax / >= 0.6) | clips |",
             "|---|---|---|---|"]
    for engine, s in sorted(result["per_engine"].items()):
        lines.append(f"| {engine} | {pct(s['command_accuracy'])} | "
                     f"{pct(s['unknown_false_accept'])} / "
                     f"{pct(s['unknown_false_accept_at_threshold'])} | "
                     f"{s['command_clips'] + s['unknown_clips']} |")
    return lines


def loeo_word_table(loeo: dict[str, Any]) -> list[str]:
    """Per-word accuracy on each held-out engine: shows whether an unseen engine fails on a
    few words (a pronunciation the model never heard) or on all of them (the voice itself)."""
    models = {engine: shipped(r["models"]) for engine, r in loeo.items()}
    words = [w for w in next(iter(models.values()))["per_class"] if Manifest.is_command(w)]
    lines = ["| held-out engine | " + " | ".join(words) + " |", "|---" * (len(words) + 1) + "|"]
    for engine, m in models.items():
        cells = " | ".join(pct(m["per_class"].get(w)) for w in words)
        lines.append(f"| {engine} | {cells} |")
    return lines


def write_report(report: dict[str, Any], labels: list[str], out: Path) -> Path:
    """report.md beside report.json, with confusion matrix and training curve PNGs."""
    out = Path(out)
    lines = [f"# Training report: {out.name}", ""]
    lines.append("Clips per engine: " + ", ".join(f"{k} {v}" for k, v in report["clips"].items()))
    loeo = report.get("leave_one_engine_out") or {}
    if loeo:
        lines += ["", "## Leave one engine out (int8 model, node runtime)", "",
                  "Trained without any voice of the engine, tested on all of its clips.", "",
                  "| held-out engine | command accuracy | `_unknown_` as command (argmax / >= 0.6) "
                  "| float32 command accuracy |", "|---|---|---|---|"]
        for engine, result in loeo.items():
            f = result["models"]["float32/ai-edge-litert"]
            q = shipped(result["models"])
            lines.append(f"| {engine} | {pct(q['command_accuracy'])} | "
                         f"{pct(q['unknown_false_accept'])} / "
                         f"{pct(q['unknown_false_accept_at_threshold'])} | "
                         f"{pct(f['command_accuracy'])} |")
        lines += ["", "Accuracy per word on the held-out engine:", "", *loeo_word_table(loeo)]
    final = report["final"]
    lines += ["", "## Final model (all engines; tested on held-out voices)", ""]
    for key, m in final["models"].items():
        lines.append(f"- `{key}`: accuracy {pct(m['accuracy'])}, command accuracy "
                     f"{pct(m['command_accuracy'])}, `_unknown_` as command "
                     f"{pct(m['unknown_false_accept'])}, {m['bytes']:,} bytes")
    best = shipped(final["models"])
    lines += ["", *engine_table(best), ""]
    plot_confusion(best["confusion"], labels, out / "confusion.png", "final model, held-out voices")
    plot_history(final["history"], out / "training_curves.png", "final model")
    lines += ["![confusion matrix](confusion.png)", "", "![training curves](training_curves.png)"]
    if streams(report):
        lines += ["", "## Streaming evaluation (node detector on long recordings)", ""]
        lines += [f"- {who_speaks(stream)}: {stream['duration_s'] / 60:.1f} min, "
                  f"{stream['commands']} commands: recall {pct(stream['recall'])}, "
                  f"{stream['false_activations']} false activations "
                  f"({stream['false_activations_per_hour']:.1f} per hour){during(stream)}"
                  for stream in streams(report)]
    if report.get("calibration"):
        lines += ["", "## Shipped threshold (chosen on held-out people)", "",
                  calibration_line(report["calibration"]), "",
                  "![threshold trade-off](threshold_tradeoff.png)"]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def calibration_line(calibration: dict[str, Any]) -> str:
    return (f"Threshold {calibration['threshold']:.3f} in the manifest: the most commands "
            f"found at <= {calibration['max_false_activations_per_hour']:g} false activations "
            f"per hour on {' + '.join(f'`{r}`' for r in calibration['recordings'])} "
            f"({60 * calibration['hours']:.0f} min): recall {pct(calibration['recall'])} at "
            f"{calibration['false_activations_per_hour']:.2f} per hour.")


def benchmark_summary(report: dict[str, Any], command: str) -> str:
    """The figures BENCHMARKS.md quotes for a training run."""
    lines = [f"Reproduce: `{command}`", ""]
    loeo = report.get("leave_one_engine_out") or {}
    if loeo:
        lines += ["Leave-one-engine-out (trained without the engine, int8 in ai-edge-litert):", "",
                  "| held-out engine | command accuracy | `_unknown_` as command (argmax/>=0.6) |",
                  "|---|---|---|"]
        for engine, result in loeo.items():
            m = shipped(result["models"])
            lines.append(f"| {engine} | {pct(m['command_accuracy'])} | "
                         f"{pct(m['unknown_false_accept'])} / "
                         f"{pct(m['unknown_false_accept_at_threshold'])} |")
        lines += ["", "Accuracy per word on the held-out engine:", "", *loeo_word_table(loeo), ""]
    lines += ["Final model on held-out voices:", "", "| model | accuracy | command accuracy | "
              "`_unknown_` as command | bytes |", "|---|---|---|---|---|"]
    for key, m in report["final"]["models"].items():
        lines.append(f"| {key} | {pct(m['accuracy'])} | {pct(m['command_accuracy'])} | "
                     f"{pct(m['unknown_false_accept'])} | {m['bytes']:,} |")
    for stream in streams(report):
        lines += ["", f"Streaming ({stream['duration_s'] / 60:.0f} min recording, "
                  f"{who_speaks(stream)}, node detector): recall {pct(stream['recall'])} "
                  f"({stream['detected']}/{stream['commands']}), "
                  f"{stream['false_activations_per_hour']:.1f} false activations per hour"
                  f"{during(stream)}."]
    if report.get("calibration"):
        lines += ["", calibration_line(report["calibration"])]
    return "\n".join(lines)


def during(stream: dict[str, Any]) -> str:
    """What the false activations fired on, when the run recorded it."""
    counts = stream.get("false_activations_during")
    if not counts or not stream["false_activations"]:
        return ""
    said = ", ".join(f"{n} on no speech" if cause == "no speech" else f"{n} during {cause}s"
                     for cause, n in counts.items() if n)
    return f" ({said})"


def streams(report: dict[str, Any]) -> list[dict[str, Any]]:
    """A run's streaming evaluations (runs before several recordings kept one, `streaming`)."""
    if report.get("streams"):
        return list(report["streams"])
    return [report["streaming"]] if report.get("streaming") else []


def who_speaks(stream: dict[str, Any]) -> str:
    """Whose voices a recording has, against the run's training data: held-out voices of the
    trained engines, or an engine never trained on (the honest stand-in for a new person)."""
    name = f"`{stream['recording']}`, " if stream.get("recording") else ""
    unseen = stream.get("unseen_engines")
    if unseen:
        return f"{name}{', '.join(unseen)}: an engine never trained on"
    engines = ", ".join(stream.get("engines") or [])
    if unseen is None and "engines" in stream:  # training engines unknown (older manifest)
        return f"{name}{engines} voices"
    return f"{name}{engines + ' ' if engines else ''}voices never trained on"
