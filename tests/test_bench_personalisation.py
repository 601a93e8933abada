"""bench.personalisation's own plumbing (no fine-tuning): which base it tunes, which recorded
people it scores, and where its section goes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bench import personalisation
from edge_node.model import DEFAULT_MODEL, read_manifest
from tests.support.shared_data import mini_speech_commands
from training.data.dataset import PEOPLE_EVAL_FRACTION, is_held_out
from training.models.finetune import BaseModel, weights_path

pytestmark = pytest.mark.unit


def scored(accuracy: float, unknown: float) -> dict[str, float]:
    return {"command_accuracy": accuracy, "unknown_as_command": unknown}


def fake_rows(voices: list[str], people: bool) -> list[dict[str, Any]]:
    rows = []
    for voice in voices:
        row = {"voice": voice, "held_back": 9, "seconds": 10.0, "base": scored(0.5, 0.1),
               "tuned": scored(1.0, 0.0), "base_others": scored(0.5, 0.1),
               "tuned_others": scored(0.25, 0.2)}
        if people:
            row |= {"base_people": scored(0.9, 0.05), "tuned_people": scored(0.8, 0.1)}
        rows.append(row)
    return rows


def test_an_installed_model_is_a_base_and_the_section_is_the_one_asked_for(tmp_path,
                                                                            monkeypatch):
    """`--base` takes the bundled `.tflite` (its weights beside it), not only RUN/final, and
    `--section`/`--title` put the result beside an earlier measurement, not over it."""
    seen: dict[str, Any] = {}

    def run(base: BaseModel, *args: Any) -> list[dict[str, Any]]:
        seen["base"] = base
        return fake_rows(["piper:piper-s1-0000", "piper:piper-s1-0001"], people=False)

    monkeypatch.setattr(personalisation, "run", run)
    benchmarks = tmp_path / "BENCHMARKS.md"
    benchmarks.write_text("<!-- personalisation-voices -->\n## Older\n\nkept\n"
                          "<!-- /personalisation-voices -->\n")
    personalisation.main(["--base", str(DEFAULT_MODEL), "--data", str(tmp_path),
                          "--voices", "piper=2", "--benchmarks", str(benchmarks),
                          "--section", "personalisation-new", "--title", "New base"])
    assert seen["base"] == BaseModel(DEFAULT_MODEL, weights_path(DEFAULT_MODEL))
    text = benchmarks.read_text()
    assert "## Older\n\nkept\n" in text
    manifest = read_manifest(DEFAULT_MODEL)
    new = text.split("<!-- personalisation-new -->\n")[1]
    assert new.startswith("## New base\n")
    assert f"Base model: {manifest.name} {manifest.version}, trained on " in new
    assert f"--base {DEFAULT_MODEL} --voices piper=2" in new
    assert "| **mean of 2** | 50.0% / 10.0% | **100.0% / 0.0%** |" in new


def test_recorded_people_columns_appear_when_every_row_has_them():
    text = personalisation.table(fake_rows(["a", "b"], people=True))
    header, rule, *body = text.splitlines()
    assert "recorded people, base | recorded people, personalised" in header
    assert rule.count("|---") == 8
    assert body[-1] == ("| **mean of 2** | 50.0% / 10.0% | **100.0% / 0.0%** | 50.0% / 10.0% "
                        "| 25.0% / 20.0% | 90.0% / 5.0% | 80.0% / 10.0% | 10 s |")
    assert "recorded people" not in personalisation.table(fake_rows(["a"], people=False))


def test_the_people_scored_are_held_out_speakers_only(tmp_path):
    root = mini_speech_commands(tmp_path / "sc", per_word=40)
    labels = list(read_manifest(DEFAULT_MODEL).labels)
    clips = personalisation.people_clips(root, labels, 3, seed=1)
    assert clips and all(is_held_out(c.voice, PEOPLE_EVAL_FRACTION) for c in clips)
    counts = Counter(c.label for c in clips)
    assert "_silence_" not in counts and max(counts.values()) <= 3
    assert Path(clips[0].path).suffix == ".flac"
