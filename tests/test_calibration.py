"""The threshold a model ships with: read from its manifest, used unless one is set, brought
along by a new model, and chosen in training on held-out people."""

import json
import shutil

import pytest

from edge_node.detector import DEFAULT_THRESHOLD, Detector, DetectorSettings
from edge_node.model import DEFAULT_MODEL, Model, ModelError, manifest_path, read_manifest
from training.evaluation.calibrate import choose_threshold


def model_with(tmp_path, name, detector):
    """The bundled model under another name, its manifest's `detector` section replaced."""
    path = tmp_path / f"{name}.tflite"
    shutil.copyfile(DEFAULT_MODEL, path)
    manifest = json.loads(manifest_path(DEFAULT_MODEL).read_text())
    manifest.pop("detector", None)
    if detector is not None:
        manifest["detector"] = detector
    manifest["version"] = name
    manifest_path(path).write_text(json.dumps(manifest))
    return path


@pytest.mark.unit
def test_the_calibrated_threshold_is_used_unless_one_is_set(tmp_path):
    calibrated = Model(model_with(tmp_path, "a", {"threshold": 0.45}))
    assert calibrated.manifest.threshold == 0.45
    detector = Detector(calibrated)
    assert detector.settings.threshold == 0.45
    assert "calibrated for" in detector.threshold_source
    assert detector.settings.threshold_for("stop") == 0.45
    chosen = Detector(calibrated, DetectorSettings(threshold=0.7, thresholds={"stop": 0.5}))
    assert chosen.settings.threshold == 0.7 and chosen.settings.threshold_for("stop") == 0.5
    assert "set in node.yaml" in chosen.threshold_source
    plain = Detector(Model(model_with(tmp_path, "b", None)))
    assert plain.settings.threshold == DEFAULT_THRESHOLD
    assert "built-in default" in plain.threshold_source


@pytest.mark.unit
def test_a_new_model_brings_its_threshold_and_a_set_one_stays(tmp_path):
    first = Model(model_with(tmp_path, "a", {"threshold": 0.45}))
    second = Model(model_with(tmp_path, "b", {"threshold": 0.8}))
    detector = Detector(first)
    detector.use_model(second)
    assert detector.settings.threshold == 0.8
    detector.update_settings(DetectorSettings(refractory_s=2.0))  # another setting changed
    assert detector.settings.threshold == 0.8 and detector.settings.refractory_s == 2.0
    detector.update_settings(DetectorSettings(threshold=0.5))
    detector.use_model(first)
    assert detector.settings.threshold == 0.5


@pytest.mark.parametrize("detector", [{"threshold": 0}, {"threshold": 1.5},
                                      {"threshold": "high"}, {"threshold": float("nan")},
                                      {"threshold": True}, [0.5]])
@pytest.mark.unit
def test_a_bad_calibrated_threshold_refuses_the_model(tmp_path, detector):
    with pytest.raises(ModelError, match="detector"):
        read_manifest(model_with(tmp_path, "bad", detector))


@pytest.mark.unit
def test_the_shipped_threshold_finds_most_commands_within_the_false_activation_rate():
    rows = [{"threshold": 0.3, "recall": 0.95, "false_activations_per_hour": 9.0},
            {"threshold": 0.4, "recall": 0.93, "false_activations_per_hour": 2.0},
            {"threshold": 0.5, "recall": 0.93, "false_activations_per_hour": 1.0},
            {"threshold": 0.6, "recall": 0.90, "false_activations_per_hour": 0.0}]
    assert choose_threshold(rows, 2.0)["threshold"] == 0.4
    assert choose_threshold(rows, 1.5)["threshold"] == 0.5
    assert choose_threshold(rows, -1.0)["threshold"] == 0.6  # none within: the strictest


@pytest.mark.integration
def test_a_sweep_pools_its_recordings_and_keeps_each_ones_false_activations(tmp_path):
    """Calibration pools people and talk; the talk recording's own rate stays readable (the
    node must also stay within the rate on talk alone)."""
    from edge_node.config import DEFAULT_EXAMPLE
    from training.data.vocab import COMMANDS
    from training.evaluation.calibrate import sweep_recordings

    twice = []
    for name in ("a", "b"):
        shutil.copyfile(DEFAULT_EXAMPLE, tmp_path / f"{name}.wav")
        shutil.copyfile(DEFAULT_EXAMPLE.with_suffix(".json"), tmp_path / f"{name}.json")
        twice.append(tmp_path / f"{name}.wav")
    rows = sweep_recordings(DEFAULT_MODEL, twice, COMMANDS, (0.3, 0.7))
    for row in rows:
        parts = row["per_recording"]
        assert parts[0] == parts[1] and len(parts) == 2
        assert row["false_activations"] == sum(p["false_activations"] for p in parts)
        assert row["hours"] == pytest.approx(sum(p["hours"] for p in parts))
    assert rows[0]["false_activations"] >= rows[1]["false_activations"]


@pytest.mark.unit
def test_the_isolation_threshold_keeps_the_stated_share_of_words_alone_and_separates_best():
    import numpy as np

    from training.models.isolation import choose_threshold as choose_isolation

    rng = np.random.default_rng(3)
    alone = np.concatenate([rng.uniform(0.6, 1.0, 980), rng.uniform(0.0, 0.3, 20)])
    other = np.concatenate([rng.uniform(0.0, 0.4, 950), rng.uniform(0.4, 1.0, 50)])
    scores = np.concatenate([alone, other])
    is_alone = np.arange(scores.size) < alone.size
    threshold, found = choose_isolation(scores, is_alone, keep=0.97)
    assert 0.4 <= threshold <= 0.6  # above the talk's bulk, below the words'
    assert found["alone_kept"] >= 0.97 and found["other_passed"] < 0.06
    strict, kept = choose_isolation(scores, is_alone, keep=0.99)  # keeps the stragglers too
    assert strict < 0.3 and kept["alone_kept"] >= 0.99
    with pytest.raises(ValueError, match="words alone and other moments"):
        choose_isolation(scores[is_alone], is_alone[is_alone], keep=0.9)
