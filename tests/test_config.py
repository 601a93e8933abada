"""node.yaml validation: clear errors naming the key, overrides from the command line."""

from pathlib import Path

import pytest

from edge_node.config import ConfigError, NodeConfig, load_config

pytestmark = pytest.mark.unit


def write(tmp_path, text):
    path = tmp_path / "node.yaml"
    path.write_text(text)
    return path


def test_full_config_is_read_into_frozen_settings(tmp_path):
    path = write(tmp_path, """
node_id: kitchen
name: Kitchen Pi
source: "wav:/tmp/x.wav"
audio: {device: snd_rpi_i2s, sample_format: int32, channels: 2, channel: 1, discard_s: 1.5}
detector: {threshold: 0.7, thresholds: {stop: 0.5}, hop_ms: 100, refractory_s: 2}
""")
    config = load_config(path)
    assert isinstance(config, NodeConfig)
    assert config.node_id == "kitchen" and config.display_name == "Kitchen Pi"
    assert config.audio.device == "snd_rpi_i2s" and config.audio.channel == 1
    assert config.detector.threshold_for("stop") == 0.5
    assert config.detector.threshold_for("go") == 0.7
    assert config.detector.refractory_s == 2.0
    with pytest.raises(AttributeError):
        config.node_id = "other"


def test_no_file_gives_defaults_and_overrides_apply():
    config = load_config(None, {"node_id": "n1", "detector.threshold": 0.9, "model": None})
    assert config.node_id == "n1" and config.detector.threshold == 0.9
    assert config.model.name == "default.tflite"


@pytest.mark.parametrize("text, message", [
    ("detector: {threshold: high}", "detector.threshold: expected a number, got 'high'"),
    ("detector: {treshold: 0.5}", "unknown setting detector.treshold"),
    ("colour: blue", "unknown setting colour"),
    ("detector: {threshold: 1.5}", "detector.threshold must be within 0.01..1, got 1.5"),
    ("node_id: 'bad id!'", "node_id 'bad id!' may only hold"),
    ("audio: {sample_format: int24}", "audio"),
    ("audio: {discard_s: yes}", "audio.discard_s: expected a number"),
    ("detector: [1, 2]", "detector: expected a mapping"),
    ("- just\n- a list", "must be a mapping"),
    ("detector: {threshold: 0.5", "not valid YAML"),
    ("log_level: LOUD", "log_level"),
])
def test_invalid_configs_name_the_problem(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_config(write(tmp_path, text))


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(Path(tmp_path / "nope.yaml"))
