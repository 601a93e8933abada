"""Scores of a model on labelled clips: what the report and BENCHMARKS.md quote."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edge_node.model import Manifest
from training.data.vocab import UNKNOWN_LABEL, near_misses, plain_words


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def scores(probs: np.ndarray, y_true: np.ndarray, labels: Sequence[str],
           engines: Sequence[str], threshold: float = 0.6) -> dict[str, Any]:
    """Accuracy per class and per engine, command accuracy, and `_unknown_` false accepts.

    - command accuracy: command clips whose top label is the right command;
    - unknown false accepts: `_unknown_` clips whose top label is a command (argmax, as
      `edge-node classify` reports) and, stricter, with a probability >= `threshold` (what the
      streaming detector would report);
    - non-command false accepts: `_unknown_` and `_silence_` clips taken for a command (argmax).
    """
    labels = list(labels)
    y_pred = probs.argmax(axis=1)
    top = probs.max(axis=1)
    is_command = np.array([Manifest.is_command(lab) for lab in labels])
    engines_arr = np.asarray(engines)
    result: dict[str, Any] = {
        "clips": int(len(y_true)),
        "accuracy": float(np.mean(y_pred == y_true)) if len(y_true) else float("nan"),
        "per_class": {},
        "per_engine": {},
        "confusion": confusion(y_true, y_pred, len(labels)).tolist(),
    }
    for i, label in enumerate(labels):
        mask = y_true == i
        if mask.any():
            result["per_class"][label] = float(np.mean(y_pred[mask] == i))
    cmd_mask = is_command[y_true]
    unknown_mask = np.array([labels[i] == UNKNOWN_LABEL for i in y_true], dtype=bool)
    non_command_mask = ~cmd_mask

    def summary(mask: np.ndarray) -> dict[str, float]:
        cmd = mask & cmd_mask
        unk = mask & unknown_mask
        return {
            "command_accuracy": float(np.mean(y_pred[cmd] == y_true[cmd])) if cmd.any() else None,
            "command_clips": int(cmd.sum()),
            "unknown_false_accept": float(np.mean(is_command[y_pred[unk]])) if unk.any() else None,
            "unknown_false_accept_at_threshold": float(
                np.mean(is_command[y_pred[unk]] & (top[unk] >= threshold))) if unk.any() else None,
            "unknown_clips": int(unk.sum()),
            "non_command_false_accept": float(np.mean(is_command[y_pred[non]]))
            if (non := mask & non_command_mask).any() else None,
            "non_command_clips": int((mask & non_command_mask).sum()),
        }

    result.update(summary(np.ones(len(y_true), dtype=bool)))
    for engine in sorted(set(engines_arr.tolist())):
        result["per_engine"][engine] = summary(engines_arr == engine)
    return result


def commands_at_false_accept(probs: np.ndarray, y_true: np.ndarray, labels: Sequence[str],
                             max_false_accept: float) -> float | None:
    """Share of command clips taken for the right command when the scores are shifted towards
    or away from the commands until at most `max_false_accept` of the other clips (other
    words, silence) are taken for a command: two models compared at equal false accepts,
    which argmax alone does not give (one may just sit further along the same trade-off)."""
    is_command = np.array([Manifest.is_command(lab) for lab in labels])
    command_clips = is_command[y_true]
    if not command_clips.any() or command_clips.all():
        return None
    floor = np.finfo(np.float64).tiny
    logp = np.log(np.maximum(probs.astype(np.float64), floor))
    margin = logp[:, is_command].max(axis=1) - logp[:, ~is_command].max(axis=1)
    others = np.sort(margin[~command_clips])[::-1]
    allowed = int(np.floor(max_false_accept * len(others) + 1e-9))
    cut = others[allowed] if allowed < len(others) else -np.inf
    best = np.flatnonzero(is_command)[probs[:, is_command].argmax(axis=1)]
    right = (best == y_true) & (margin > cut)
    return float(np.mean(right[command_clips]))


def accuracy_at_false_accepts(probs: np.ndarray, y_true: np.ndarray, labels: Sequence[str],
                              limit: float = 0.05, threshold: float = 0.6,
                              ) -> tuple[float, float]:
    """(best command accuracy, `_unknown_` scale) over `_unknown_` priors that keep the
    `_unknown_` clips reported as a command at `threshold` within `limit`.

    Two models compare fairly only at the same false accepts: a change that merely makes
    `_unknown_` less likely gains command accuracy by reporting more non-commands, and the
    prior (the `_unknown_` probability scaled, then renormalised) moves any model along that
    trade-off. Accuracy is argmax, false accepts at `threshold`, as `scores` counts them.
    """
    labels = list(labels)
    unknown = labels.index(UNKNOWN_LABEL)
    is_command = np.array([Manifest.is_command(lab) for lab in labels])
    commands, unknowns = is_command[y_true], y_true == unknown
    if not commands.any():
        return float("nan"), float("nan")
    if not unknowns.any():  # nothing to falsely accept: the shipped prior is as good as any
        return float(np.mean(probs[commands].argmax(axis=1) == y_true[commands])), 1.0
    best = (float("nan"), float("nan"))
    for scale in np.geomspace(0.02, 50.0, 121):
        p = probs.copy()
        p[:, unknown] *= scale
        p /= p.sum(axis=1, keepdims=True)
        pred, top = p.argmax(axis=1), p.max(axis=1)
        false_accepts = np.mean(is_command[pred[unknowns]] & (top[unknowns] >= threshold))
        accuracy = float(np.mean(pred[commands] == y_true[commands]))
        if false_accepts <= limit and (np.isnan(best[0]) or accuracy > best[0]):
            best = (accuracy, float(scale))
    return best


def detection_at_false_accepts(probs: np.ndarray, y_true: np.ndarray, labels: Sequence[str],
                               limit: float = 0.05) -> tuple[float, float]:
    """(share of command clips detected, threshold) at the lowest threshold that keeps the
    `_unknown_` clips reported as a command within `limit`; detected = the right command, with
    a top probability above the threshold, as the node's detector decides.

    Unlike `accuracy_at_false_accepts` (a fixed 0.6 and a scaled prior) this hardly depends on
    how peaked a model's probabilities are: a change that only softens them (a temperature)
    moves it by 1-3 points, where the prior-scaled figure moves by up to 20 (BENCHMARKS.md).
    It ranks recipes as streaming at equal false activations does.
    """
    labels = list(labels)
    is_command = np.array([Manifest.is_command(lab) for lab in labels])
    commands, unknowns = is_command[y_true], y_true == labels.index(UNKNOWN_LABEL)
    if not commands.any():
        return float("nan"), float("nan")
    pred, top = probs.argmax(axis=1), probs.max(axis=1)
    accepted = np.sort(top[unknowns & is_command[pred]])[::-1]
    allowed = int(np.floor(limit * unknowns.sum()))
    threshold = float(accepted[allowed]) if accepted.size > allowed else 0.0
    right = pred[commands] == y_true[commands]
    above = top[commands] > threshold if accepted.size > allowed else np.ones_like(right)
    return float(np.mean(right & above)), threshold


FALSE_ACTIVATION_CAUSES = ("near-miss word", "other word", "sentence", "command", "no speech")
"""What was being said when a false activation fired (`command`: a wrong command, or a second
detection of one)."""


def false_activation_cause(time_s: float, events: Sequence[dict[str, Any]],
                           commands: Sequence[str], close: set[str],
                           tolerance_s: float = 1.5) -> str:
    """The `FALSE_ACTIVATION_CAUSES` entry for a false activation at `time_s`: the event it
    fired within (start to `tolerance_s` after the end, as hits are scored)."""
    for event in events:
        if event["start_s"] <= time_s <= event["end_s"] + tolerance_s:
            if event["label"] in commands:
                return "command"
            if event.get("kind") == "sentence":
                return "sentence"
            return "near-miss word" if plain_words(event.get("text", "")) in close else "other word"
    return "no speech"


def streaming_scores(detections: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]],
                     duration_s: float, commands: Sequence[str],
                     tolerance_s: float = 1.5,
                     heard: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
    """Recall and false activations per hour of a detector run over a recording with known events.

    A detection is a hit when it names the command of an event and fires between the event's
    start and `tolerance_s` after its end; each event counts once. Everything else (wrong
    command, a detection during other words or noise, a second detection) is a false activation,
    counted by what was being said (`false_activations_during`): on our recordings nearly all
    are words that sound like a command, whose share of the recording sets the rate.

    `heard(event)` marks the words of speakers the model trained on (a speaker fold's model
    on a recording of every held-out speaker): their commands still take their detections,
    but count in neither recall nor false activations, and their time leaves the hours.
    """
    known = [e for e in events if heard is not None and e.get("kind") == "word" and heard(e)]
    targets = [e for e in events if e["label"] in commands]
    matched: set[int] = set()
    false = []
    for det in detections:
        hit = None
        for i, event in enumerate(targets):
            if i in matched or event["label"] != det["label"]:
                continue
            if event["start_s"] <= det["time_s"] <= event["end_s"] + tolerance_s:
                hit = i
                break
        if hit is None:
            if not any(e["start_s"] <= det["time_s"] <= e["end_s"] + tolerance_s
                       for e in known):
                false.append(det)
        else:
            matched.add(hit)
    unheard = [i for i, e in enumerate(targets) if heard is None or not heard(e)]
    duration_s -= covered_s([(e["start_s"], e["end_s"] + tolerance_s) for e in known])
    hours = duration_s / 3600.0
    per_command = {}
    for command in commands:
        mine = [i for i in unheard if targets[i]["label"] == command]
        if mine:
            per_command[command] = sum(i in matched for i in mine) / len(mine)
    close = set(near_misses(commands))
    during = dict.fromkeys(FALSE_ACTIVATION_CAUSES, 0)
    for det in false:
        during[false_activation_cause(det["time_s"], events, commands, close, tolerance_s)] += 1
    detected = len(matched.intersection(unheard))
    return {
        "commands": len(unheard),
        "detected": detected,
        "recall": detected / len(unheard) if unheard else None,
        "recall_per_command": per_command,
        "false_activations": len(false),
        "false_activations_per_hour": len(false) / hours if hours else None,
        "false_activations_during": during,
        "duration_s": duration_s,
        "false_examples": false[:20],
    }


def covered_s(spans: Sequence[tuple[float, float]]) -> float:
    """Seconds covered by the union of (start, end) spans."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def recall_at(rows: Sequence[tuple[float, dict[str, Any]]], false_per_hour: float) -> float | None:
    """Recall at `false_per_hour` false activations, linearly interpolated along a threshold
    sweep's trade-off curve ((threshold, `streaming_scores`) rows); None outside the range the
    sweep covers (no extrapolation). Two models compared at one threshold compare two
    different trade-offs; at one false-activation rate they compare like with like."""
    points = sorted((s["false_activations_per_hour"], s["recall"]) for _, s in rows)
    if not points or not points[0][0] <= false_per_hour <= points[-1][0]:
        return None
    # equal false-activation counts at several thresholds: keep the best recall of each
    best: dict[float, float] = {}
    for fa, recall in points:
        best[fa] = max(best.get(fa, 0.0), recall)
    xs = sorted(best)
    return float(np.interp(false_per_hour, xs, [best[x] for x in xs]))


def rate_interval(count: int, hours: float, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) interval of an event rate per hour from `count` events in `hours`:
    the range a short recording cannot tell apart (2 false activations in 23 minutes is
    0.6 to 19 per hour)."""
    from scipy.stats import chi2

    if hours <= 0 or count < 0:
        raise ValueError(f"need a positive duration and a count >= 0, got {count} in {hours} h")
    tail = (1.0 - confidence) / 2.0
    low = chi2.ppf(tail, 2 * count) / 2.0 if count else 0.0
    high = chi2.ppf(1.0 - tail, 2 * count + 2) / 2.0
    return float(low / hours), float(high / hours)


def proportion_interval(hits: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a share, e.g. recall over a recording's commands."""
    from scipy.stats import binomtest

    interval = binomtest(hits, total).proportion_ci(confidence_level=confidence)
    return float(interval.low), float(interval.high)
