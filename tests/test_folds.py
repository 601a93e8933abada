"""Recipes compared on the same speaker folds (no TensorFlow)."""

import json

import pytest

from edge_node.isolation import DEFAULT_ISOLATION_MODEL
from edge_node.model import read_manifest
from training.experiments.folds import compare_fold_runs

pytestmark = pytest.mark.unit


def fold_run(root, name, per_fold, provenance=None):
    """A `--folds` run's results as `kws-train train --folds` leaves them (`provenance`: per
    fold, what `training.experiments.provenance` kept; runs made before it kept none)."""
    for k, (commands, others) in per_fold.items():
        folder = root / name / f"fold-{k}"
        folder.mkdir(parents=True)
        measures = {"command_accuracy": commands, "non_command_false_accept": others,
                    "unknown_false_accept": others}
        result = {"models": {"int8/ai-edge-litert": measures}}
        if provenance is not None:
            result["provenance"] = provenance[k]
        (folder / "result.json").write_text(json.dumps(result))
    return root / name


def made_with(libraries, test_rows):
    return {"environment": libraries, "train_rows": "t", "test_rows": test_rows}


def test_recipes_are_paired_fold_by_fold_on_the_folds_all_finished(tmp_path):
    base = fold_run(tmp_path, "base", {0: (0.90, 0.04), 1: (0.96, 0.02), 2: (0.93, 0.03)})
    wider = fold_run(tmp_path, "wider", {0: (0.92, 0.03), 1: (0.95, 0.02)})
    table = compare_fold_runs([("base", base), ("wider", wider)])
    assert "| recipe | fold 0 | fold 1 | mean |" in table  # fold 2: only one run has it
    assert "| base | 90.0% / 4.0% | 96.0% / 2.0% | 93.0% / 3.0% |  |" in table
    assert "| wider | 92.0% / 3.0% | 95.0% / 2.0% | 93.5% / 2.5% | +2.0, -1.0; -1.0, +0.0 |" \
        in table


def test_the_comparison_says_when_runs_are_not_like_for_like(tmp_path):
    here = {"python": "3.11.7", "keras": "3.15.1"}
    folds = {0: (0.90, 0.04), 1: (0.96, 0.02)}
    base = fold_run(tmp_path, "base", folds, {0: made_with(here, "a"), 1: made_with(here, "b")})
    same = fold_run(tmp_path, "same", folds, {0: made_with(here, "a"), 1: made_with(here, "b")})
    assert "not like for like" not in compare_fold_runs([("base", base), ("same", same)])
    assert "different libraries" not in compare_fold_runs([("base", base), ("same", same)])

    elsewhere = fold_run(tmp_path, "elsewhere", folds,
                         {0: made_with({**here, "keras": "3.10.0"}, "a"),
                          1: made_with({**here, "keras": "3.10.0"}, "other rows")})
    table = compare_fold_runs([("base", base), ("elsewhere", elsewhere)])
    assert "trained with different libraries" in table
    assert "keras 3.15.1" in table and "keras 3.10.0" in table
    assert "Fold 1 was tested on different rows" in table
    assert "Fold 0 was tested" not in table

    mixed = fold_run(tmp_path, "mixed", folds, {0: made_with(here, "a"),
                                                1: made_with({**here, "numpy": "2.0"}, "b")})
    assert "mixed: its folds were trained with different libraries." in compare_fold_runs(
        [("base", base), ("mixed", mixed)])

    older = fold_run(tmp_path, "older", folds)
    assert "older: made before runs kept their libraries; not checked." in compare_fold_runs(
        [("base", base), ("older", older)])


def test_a_fingerprint_follows_the_rows_their_type_and_shape():
    import numpy as np

    from training.experiments.provenance import digest, environment

    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert digest(rows) == digest(rows.copy())
    assert digest(rows) != digest(rows.reshape(4, 3))
    assert digest(rows) != digest(rows.astype(np.float64))
    changed = rows.copy()
    changed[2, 3] += 1e-3
    assert digest(rows) != digest(changed)
    assert environment()["numpy"] == np.__version__


def test_runs_without_a_common_fold_are_refused(tmp_path):
    one = fold_run(tmp_path, "one", {0: (0.9, 0.1)})
    other = fold_run(tmp_path, "other", {1: (0.9, 0.1)})
    with pytest.raises(ValueError, match="no finished fold in common"):
        compare_fold_runs([("one", one), ("other", other)])
    with pytest.raises(FileNotFoundError):
        compare_fold_runs([("one", one), ("none", tmp_path / "none")])


def test_runs_that_kept_their_test_probabilities_are_also_compared_at_equal_false_accepts(
        tmp_path):
    import numpy as np

    from training.experiments.pipeline import save_test_probabilities

    labels = ["go", "no", "_unknown_", "_silence_"]
    y = np.array([0] * 50 + [1] * 50 + [2] * 90 + [3] * 10)
    rng = np.random.default_rng(0)

    def probs(sharpness):  # more sharpness: the right label further ahead of the others
        scores = rng.normal(size=(len(y), len(labels)))
        scores[np.arange(len(y)), y] += sharpness
        p = np.exp(scores)
        return p / p.sum(axis=1, keepdims=True)

    runs = []
    for name, sharpness in (("blunt", 1.5), ("sharp", 4.0)):
        run = fold_run(tmp_path, name, {0: (0.9, 0.05), 1: (0.9, 0.05)})
        for k in (0, 1):
            save_test_probabilities(run / f"fold-{k}", y, labels,
                                    {"int8/ai-edge-litert": probs(sharpness)})
        runs.append((name, run))
    runs.append(("older", fold_run(tmp_path, "older", {0: (0.9, 0.05), 1: (0.9, 0.05)})))
    table = compare_fold_runs(runs)
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()}
    assert "commands at 2% |" in table
    blunt, sharp = (float(rows[n].split(" | ")[-1].split("%")[0]) for n in ("blunt", "sharp"))
    assert sharp > blunt + 20  # same argmax figures in result.json, told apart here
    assert rows["older"].endswith("| - |")


def test_fold_models_stream_on_their_own_speakers_from_their_kept_sweeps(tmp_path):
    from training.experiments.folds import fold_of, fold_streaming

    voices = [f"human:{i:08x}" for i in range(40)]
    mine = {k: next(v for v in voices if fold_of(v, 2) == k) for k in (0, 1)}
    events = [{"label": "go", "kind": "word", "engine": "human", "voice": mine[0],
               "start_s": 10.0, "end_s": 10.5},
              {"label": "no", "kind": "word", "engine": "human", "voice": mine[1],
               "start_s": 20.0, "end_s": 20.5},
              {"label": "_unknown_", "kind": "sentence", "engine": "talk", "voice": "talk:x",
               "start_s": 30.0, "end_s": 35.0}]
    recording = tmp_path / "people.wav"
    meta = {"seed": 1, "duration_s": 3600.0, "events": events}
    recording.with_suffix(".json").write_text(json.dumps(meta))
    run = fold_run(tmp_path, "run", {0: (0.9, 0.1), 1: (0.9, 0.1)})
    (run / "folds.json").write_text(json.dumps({"folds": 2}))
    # both models find both commands at 0.5 and fire once in the talk; only "go" at 0.9
    sweeps = {"0.5": [{"label": "go", "time_s": 10.8}, {"label": "no", "time_s": 20.9},
                      {"label": "up", "time_s": 32.0}],
              "0.9": [{"label": "go", "time_s": 10.8}]}
    key = f"{recording.resolve()}:1:3600.0"
    # the node's isolation check held back the "up" inside the talk: a sweep of its own
    check = read_manifest(DEFAULT_ISOLATION_MODEL).sha256[:16]
    checked = {"0.5": sweeps["0.5"][:2], "0.9": sweeps["0.9"]}
    for k in (0, 1):
        (run / f"fold-{k}" / "streaming.json").write_text(json.dumps(
            {key: sweeps, f"{key}:isolation={check}": checked}))
    with_check = fold_streaming(run, [recording], ["go", "no", "up"], [0.5, 0.9])
    assert [r["false_activations"] for r in with_check[0]] == [0, 0]
    rows = fold_streaming(run, [recording], ["go", "no", "up"], [0.5, 0.9], isolation=None)
    assert [(r["detected"], r["commands"], r["false_activations"]) for r in rows[0]] == [
        (1, 1, 1), (1, 1, 0)]
    assert [(r["detected"], r["commands"], r["false_activations"]) for r in rows[1]] == [
        (1, 1, 1), (0, 1, 0)]
    # the other fold's word and its tolerance leave each model's hour
    assert rows[0][0]["hours"] == pytest.approx((3600.0 - 2.0) / 3600.0)
