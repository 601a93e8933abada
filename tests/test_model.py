"""Model runtime shim and manifest checks, in both TFLite runtimes."""

import json
import shutil

import numpy as np
import pytest

from edge_node.model import DEFAULT_MODEL, Model, ModelError, file_sha256, manifest_path
from tests.support.audio_signals import person_saying

RUNTIMES = ["ai-edge-litert", "tflite-runtime"]


@pytest.fixture
def model_copy(tmp_path):
    """The bundled model and manifest copied where a test may damage them."""
    target = tmp_path / "model.tflite"
    shutil.copyfile(DEFAULT_MODEL, target)
    shutil.copyfile(manifest_path(DEFAULT_MODEL), manifest_path(target))
    return target


def edit_manifest(model_path, **changes):
    path = manifest_path(model_path)
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.integration
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_bundled_model_loads_and_recognises_a_command(runtime):
    model = Model(DEFAULT_MODEL, runtime=runtime)
    assert model.runtime == runtime
    assert len(model.labels) == 10 and "_unknown_" in model.labels
    probs = model.predict_waveform(person_saying("right"))
    assert probs.shape == (10,) and abs(float(probs.sum()) - 1.0) < 0.02
    assert model.labels[int(probs.argmax())] == "right"


@pytest.mark.unit
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_interpreter_is_reused_and_deterministic(runtime):
    model = Model(DEFAULT_MODEL, runtime=runtime)
    interpreter = model.interpreter
    x = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    first = model.predict_waveform(x)
    second = model.predict_waveform(x)
    assert model.interpreter is interpreter
    np.testing.assert_array_equal(first, second)


@pytest.mark.unit
def test_missing_manifest_is_refused(model_copy):
    manifest_path(model_copy).unlink()
    with pytest.raises(ModelError, match="manifest .* is missing"):
        Model(model_copy)


@pytest.mark.unit
def test_missing_model_file_is_refused(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        Model(tmp_path / "nothing.tflite")


@pytest.mark.unit
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_manifest_feature_shape_disagreeing_with_model_input_is_refused(model_copy, runtime):
    data = json.loads(manifest_path(model_copy).read_text())
    features = data["features"]
    parts = features["params"].get("parts")  # a concat profile: change its log-mel part
    (parts[0] if parts else features)["params"]["n_mels"] = 32
    edit_manifest(model_copy, features=features)
    with pytest.raises(ModelError, match="input shape .* does not fit feature profile"):
        Model(model_copy, runtime=runtime)


@pytest.mark.unit
def test_manifest_labels_disagreeing_with_model_output_are_refused(model_copy):
    labels = json.loads(manifest_path(model_copy).read_text())["labels"]
    edit_manifest(model_copy, labels=labels[:-1])
    with pytest.raises(ModelError, match="output shape .* does not match the 9 labels"):
        Model(model_copy)


@pytest.mark.unit
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_corrupt_model_file_is_refused(model_copy, runtime):
    model_copy.write_bytes(b"this is not a flatbuffer" * 100)
    edit_manifest(model_copy, sha256=file_sha256(model_copy))
    with pytest.raises(ModelError, match="not a loadable TFLite model"):
        Model(model_copy, runtime=runtime)


@pytest.mark.unit
def test_truncated_model_fails_its_checksum(model_copy):
    data = model_copy.read_bytes()
    model_copy.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="sha256 does not match"):
        Model(model_copy)


@pytest.mark.unit
@pytest.mark.parametrize("change, message", [
    ({"labels": []}, "non-empty list"),
    ({"labels": ["a", "a"]}, "duplicates"),
    ({"output": "maybe"}, "'output' must be one of"),
    ({"features": {"profile": "mfcc"}}, "unknown feature profile"),
])
def test_invalid_manifests_are_refused(model_copy, change, message):
    edit_manifest(model_copy, **change)
    with pytest.raises(ModelError, match=message):
        Model(model_copy)


@pytest.mark.unit
def test_manifest_that_is_not_json_is_refused(model_copy):
    manifest_path(model_copy).write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        Model(model_copy)


@pytest.mark.unit
def test_unknown_runtime_is_refused():
    with pytest.raises(ModelError, match="unknown TFLite runtime"):
        Model(DEFAULT_MODEL, runtime="tensorflow")


@pytest.mark.unit
def test_installing_a_model_leaves_a_running_node_on_the_file_it_mapped(model_copy, tmp_path):
    """`kws-train --install` over a model a node has open: the node's mapping keeps the old
    bytes (a new file is renamed into place) and the next load gets the new model."""
    import mmap

    from training.models.install import install_model

    article = DEFAULT_MODEL.with_name("article_cnn.tflite")
    before = Model(model_copy).features.shape
    old = model_copy.read_bytes()
    with open(model_copy, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        install_model(article, model_copy)
        assert mapped[:] == old
    assert file_sha256(model_copy) == file_sha256(article)
    assert manifest_path(model_copy).read_text() == manifest_path(article).read_text()
    assert not list(tmp_path.glob("*.part"))
    assert Model(model_copy).features.shape == Model(article).features.shape != before
