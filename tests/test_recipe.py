"""The recipe as data: YAML round trips, validation, overrides, and the bundled model's saved
recipe. Unit tests, but for the two that run `kws-train` as a process (integration)."""

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from edge_node.config import ConfigError
from edge_node.model import DEFAULT_MODEL, read_manifest
from training.models.install import recipe_path
from training.recipe import Recipe, from_data, load, parse_override, to_yaml, with_overrides

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.unit
def test_the_shipped_recipe_reads_back_equal_from_its_yaml(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(to_yaml(Recipe()))
    assert load(path) == Recipe()
    changed = with_overrides(Recipe(), {"train.epochs": 31, "seed": 4,
                                        "people.speech_commands": None})
    path.write_text(to_yaml(changed))
    assert load(path) == changed
    assert changed.train.seed == 4 and changed.people.speech_commands is None


@pytest.mark.unit
def test_a_partial_recipe_takes_the_shipped_settings_for_the_rest():
    recipe = from_data({"train": {"epochs": 5}, "synthesis": {"silence": 10}})
    assert recipe.train.epochs == 5 and recipe.synthesis.silence == 10
    assert recipe.train.architecture == Recipe().train.architecture
    assert recipe.synthesis.voices == Recipe().synthesis.voices
    assert from_data({"synthesis": {"voices": {"espeak": 3}}}).synthesis.voices == {"espeak": 3}


@pytest.mark.unit
def test_every_problem_is_reported_at_once_by_its_dotted_name():
    with pytest.raises(ConfigError) as caught:
        from_data({"copies": 0, "colour": "red",
                   "train": {"learning_rate": -1},
                   "augment": {"p_noise": 1.5, "speed_range": [1.2, 0.8]},
                   "people": {"speech_commands_weight": 0}})
    text = str(caught.value)
    for part in ("copies must be >= 1", "unknown setting colour",
                 "train.learning_rate",
                 "augment.p_noise must be within 0..1", "people.speech_commands_weight"):
        assert part in text, part


@pytest.mark.unit
def test_non_finite_and_wrongly_typed_values_are_refused():
    with pytest.raises(ConfigError, match="train.architecture must be one of"):
        from_data({"train": {"architecture": "transformer"}})
    with pytest.raises(ConfigError, match="finite"):
        from_data({"augment": {"p_noise": float("nan")}})
    with pytest.raises(ConfigError, match="expected an integer"):
        from_data({"train": {"epochs": "many"}})
    with pytest.raises(ConfigError, match="train.seed is the recipe's `seed`"):
        from_data({"train": {"seed": 3}})
    with pytest.raises(ConfigError, match="unknown recipe section"):
        with_overrides(Recipe(), {"nowhere.epochs": 3})


@pytest.mark.unit
def test_bad_recipe_files_say_what_is_wrong(tmp_path):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match="cannot read recipe"):
        load(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [epochs: 3\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(broken)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load(listed)


@pytest.mark.unit
def test_overrides_are_read_as_yaml():
    assert parse_override("train.epochs=30") == ("train.epochs", 30)
    assert parse_override("people.real_speech=null") == ("people.real_speech", None)
    assert parse_override("words=[go, stop]") == ("words", ["go", "stop"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_override("epochs")


@pytest.mark.unit
def test_the_bundled_model_carries_the_recipe_that_made_it():
    """The bundled model's recipe is the shipped one (but for its skipped estimates), and
    names the model's own name and version."""
    saved = load(recipe_path(DEFAULT_MODEL))
    manifest = read_manifest(DEFAULT_MODEL)
    assert (saved.name, saved.version) == (manifest.name, manifest.version)
    assert replace(saved, evaluation=Recipe().evaluation) == Recipe()
    assert list(saved.words) == list(manifest.commands)


@pytest.mark.integration
def test_kws_train_recipe_prints_a_recipe_that_loads_and_refuses_bad_overrides(tmp_path):
    done = subprocess.run([sys.executable, "-m", "training.cli", "recipe", "--set",
                           "train.epochs=7"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert from_data(yaml.safe_load(done.stdout)) == with_overrides(Recipe(),
                                                                    {"train.epochs": 7})
    bad = subprocess.run([sys.executable, "-m", "training.cli", "default", "--set",
                          "train.epochs=0", "--work", str(tmp_path / "w")],
                         capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and "train.epochs must be >= 1" in bad.stderr
    assert not (tmp_path / "w").exists()


@pytest.mark.integration
def test_missing_recorded_data_stops_the_recipe_before_any_work(tmp_path):
    done = subprocess.run([sys.executable, "-m", "training.cli", "default", "--set",
                           f"people.speech_commands={tmp_path / 'nowhere'}", "--work",
                           str(tmp_path / "w")], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2 and "nowhere is not there" in done.stderr
    assert not (tmp_path / "w").exists()
