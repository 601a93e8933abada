"""Training data sources: Speech Commands layout, checksum-verified download, splits, scoring."""

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tests.support.audio_signals import noise, write_wav
from training.data.dataset import (
    Clip,
    download_archive,
    load_label_folders,
    speech_commands_noise,
    split_by_voice,
)
from training.evaluation.metrics import (
    accuracy_at_false_accepts,
    covered_s,
    detection_at_false_accepts,
    scores,
    streaming_scores,
)


@pytest.fixture
def speech_commands_tree(tmp_path, speech):
    """A small archive in the Google Speech Commands layout."""
    root = tmp_path / "sc"
    for word, voice in [("stop", "slt"), ("go", "rms"), ("bed", "awb"), ("stop", "rms")]:
        folder = root / word
        folder.mkdir(parents=True, exist_ok=True)
        speaker = hashlib.sha1(voice.encode()).hexdigest()[:8]
        write_wav(folder / f"{speaker}_nohash_0.wav", speech(word, "flite", voice))
    (root / "_background_noise_").mkdir()
    write_wav(root / "_background_noise_" / "white.wav", noise(3, -30))
    return root


@pytest.mark.integration
def test_speech_commands_layout_maps_other_words_to_unknown(speech_commands_tree):
    clips = load_label_folders(speech_commands_tree, ("go", "stop"), "human")
    assert sorted((c.text, c.label) for c in clips) == [
        ("bed", "_unknown_"), ("go", "go"), ("stop", "stop"), ("stop", "stop")]
    assert len({c.voice for c in clips}) == 3
    assert [n.size for n in speech_commands_noise(speech_commands_tree)] == [48000]


@pytest.mark.integration
def test_download_verifies_the_checksum_before_extracting(speech_commands_tree, tmp_path):
    archive = tmp_path / "sc.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(speech_commands_tree, arcname=".")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match="checksum mismatch"):
        download_archive(archive.as_uri(), tmp_path / "bad", "0" * 64)
    assert not list((tmp_path / "bad").rglob("*.wav"))
    dest = download_archive(archive.as_uri(), tmp_path / "good", digest)
    assert len(load_label_folders(dest, ("go", "stop"), "human")) == 4


@pytest.mark.unit
def test_split_by_voice_keeps_each_voice_on_one_side():
    clips = [Clip(f"{e}{v}{w}.wav", w, e, f"{e}:{v}") for e in ("a", "b") for v in range(10)
             for w in ("go", "stop")]
    rest, held = split_by_voice(clips, 0.2, seed=1)
    assert {c.voice for c in rest}.isdisjoint({c.voice for c in held})
    assert len(held) == 2 * 2 * 2 and {c.engine for c in held} == {"a", "b"}
    assert split_by_voice(clips, 0.2, seed=1) == (rest, held)


@pytest.mark.unit
def test_scores_count_commands_and_unknown_false_accepts():
    labels = ["go", "stop", "_unknown_", "_silence_"]
    y = np.array([0, 1, 2, 2, 3])
    probs = np.array([[.9, .1, 0, 0], [.6, .4, 0, 0], [.1, 0, .9, 0], [.7, 0, .3, 0],
                      [0, 0, 0, 1]])
    result = scores(probs, y, labels, ["e1", "e1", "e2", "e2", "noise"])
    assert result["command_accuracy"] == 0.5
    assert result["unknown_false_accept"] == 0.5
    assert result["unknown_false_accept_at_threshold"] == 0.5
    assert result["per_engine"]["e2"]["command_accuracy"] is None
    assert result["per_class"]["_silence_"] == 1.0


@pytest.mark.unit
def test_accuracy_at_false_accepts_lowers_the_unknown_prior_only_as_far_as_the_limit():
    labels = ["go", "stop", "_unknown_", "_silence_"]
    # two commands the model puts just under `_unknown_`, one it gets right; of 20 unknown
    # clips, one is near a command: it becomes a confident false accept (0.6) before the
    # second command clip turns right
    commands = [[.45, .05, .5, 0], [.05, .42, .53, 0], [.9, .05, .05, 0]]
    unknowns = [[.55, 0, .45, 0]] + [[.05, .05, .9, 0]] * 19
    probs, y = np.array(commands + unknowns), np.array([0, 1, 0] + [2] * 20)
    shipped = scores(probs, y, labels, ["e"] * 23)
    assert shipped["command_accuracy"] == pytest.approx(1 / 3)
    assert shipped["unknown_false_accept_at_threshold"] == 0
    strict, strict_scale = accuracy_at_false_accepts(probs, y, labels, limit=0.0)
    loose, loose_scale = accuracy_at_false_accepts(probs, y, labels, limit=0.05)
    assert strict == pytest.approx(2 / 3) and 0.8 < strict_scale < 0.9
    assert loose == 1.0 and loose_scale < strict_scale
    # the chosen prior really keeps the false accepts at 0.6 within the limit
    p = probs.copy()
    p[:, 2] *= loose_scale
    p /= p.sum(axis=1, keepdims=True)
    unknown_rows = p[y == 2]
    accepted = (unknown_rows.argmax(axis=1) < 2) & (unknown_rows.max(axis=1) >= 0.6)
    assert accepted.mean() <= 0.05
    only_commands = accuracy_at_false_accepts(probs[:3], y[:3], labels)
    assert only_commands == (pytest.approx(1 / 3), 1.0)


@pytest.mark.unit
def test_detection_at_false_accepts_sweeps_the_threshold_and_ignores_how_peaked_scores_are():
    labels = ["go", "stop", "_unknown_", "_silence_"]
    commands = [[.9, .05, .05, 0], [.1, .7, .2, 0], [.5, .1, .4, 0], [.2, .2, .6, 0]]
    # 20 unknown clips: two taken for a command (0.8 and 0.55), the rest rejected
    unknowns = [[.8, .1, .1, 0], [.1, .55, .35, 0]] + [[.05, .05, .9, 0]] * 18
    probs, y = np.array(commands + unknowns), np.array([0, 1, 0, 1] + [2] * 20)
    # 5% of 20 = one false accept allowed: the threshold must pass 0.55 but not 0.8
    detected, threshold = detection_at_false_accepts(probs, y, labels, limit=0.05)
    assert threshold == pytest.approx(0.55) and detected == pytest.approx(2 / 4)
    none_allowed, strict = detection_at_false_accepts(probs, y, labels, limit=0.0)
    assert strict == pytest.approx(0.8) and none_allowed == pytest.approx(1 / 4)
    # softer or sharper probabilities (a temperature) detect the same clips
    for power in (0.5, 2.0):
        tempered = probs ** power / (probs ** power).sum(axis=1, keepdims=True)
        assert detection_at_false_accepts(tempered, y, labels, limit=0.05)[0] == detected


@pytest.mark.unit
def test_streaming_scores_match_detections_to_events():
    events = [{"label": "stop", "start_s": 1.0, "end_s": 1.5},
              {"label": "go", "start_s": 5.0, "end_s": 5.4},
              {"label": "_unknown_", "start_s": 8.0, "end_s": 9.0}]
    detections = [{"label": "stop", "time_s": 1.8}, {"label": "stop", "time_s": 2.2},
                  {"label": "left", "time_s": 8.5}]
    result = streaming_scores(detections, events, 3600.0, ["stop", "go", "left"])
    assert result["recall"] == 0.5
    assert result["false_activations"] == 2
    assert result["false_activations_per_hour"] == 2.0
    assert result["recall_per_command"] == {"stop": 1.0, "go": 0.0}
    # a second "stop" during the command, "left" during an unknown word with no kind
    assert result["false_activations_during"] == {
        "near-miss word": 0, "other word": 1, "sentence": 0, "command": 1, "no speech": 0}


@pytest.mark.unit
def test_words_of_speakers_the_model_heard_count_in_neither_recall_nor_false_activations():
    events = [{"label": "stop", "kind": "word", "voice": "human:a", "start_s": 1.0, "end_s": 1.5},
              {"label": "go", "kind": "word", "voice": "human:b", "start_s": 5.0, "end_s": 5.4},
              {"label": "_unknown_", "kind": "word", "voice": "human:b", "start_s": 8.0,
               "end_s": 9.0},
              {"label": "_unknown_", "kind": "sentence", "voice": "talk:c", "start_s": 10.0,
               "end_s": 12.0}]
    detections = [{"label": "stop", "time_s": 1.8}, {"label": "go", "time_s": 5.5},
                  {"label": "left", "time_s": 8.5}, {"label": "no", "time_s": 11.0}]
    result = streaming_scores(detections, events, 3600.0, ["stop", "go", "left", "no"],
                              heard=lambda event: event["voice"] == "human:b")
    # "go" by b takes its detection but is no command of this model's; "left" during b's word
    # is no false activation; the sentence's "no" is
    assert (result["commands"], result["detected"], result["false_activations"]) == (1, 1, 1)
    assert result["recall_per_command"] == {"stop": 1.0}
    # b's words and their tolerance (5.0-6.9 s and 8.0-10.5 s) leave the hour
    assert result["duration_s"] == pytest.approx(3600.0 - 1.9 - 2.5)


@pytest.mark.unit
def test_covered_time_counts_overlapping_spans_once():
    assert covered_s([(0.0, 2.0), (1.0, 3.0), (5.0, 6.0), (5.5, 5.8)]) == 4.0
    assert covered_s([]) == 0.0


@pytest.mark.unit
def test_false_activations_are_counted_by_what_was_being_said():
    events = [{"label": "_unknown_", "text": "Lift!", "kind": "word", "start_s": 1.0,
               "end_s": 1.5},
              {"label": "_unknown_", "text": "lights", "kind": "word", "start_s": 5.0,
               "end_s": 5.5},
              {"label": "_unknown_", "text": "could you pass me the salt", "kind": "sentence",
               "start_s": 10.0, "end_s": 12.0},
              {"label": "go", "text": "go", "kind": "word", "start_s": 20.0, "end_s": 20.4}]
    detections = [{"label": "left", "time_s": 2.9}, {"label": "right", "time_s": 5.2},
                  {"label": "no", "time_s": 11.0}, {"label": "no", "time_s": 20.5},
                  {"label": "go", "time_s": 20.6}, {"label": "up", "time_s": 30.0},
                  {"label": "left", "time_s": 3.1}]
    during = streaming_scores(detections, events, 3600.0, ["go", "left", "right", "no", "up"])[
        "false_activations_during"]
    # "lift" sounds like "left" (1.5 s after a word still counts as it); "lights" is not in the
    # near-miss list; 3.1 s is past the tolerance, so it fired on no speech
    assert during == {"near-miss word": 1, "other word": 1, "sentence": 1, "command": 1,
                      "no speech": 2}


@pytest.mark.integration
def test_zip_archives_are_verified_and_unpacked(speech_commands_tree, tmp_path):
    import zipfile

    archive = tmp_path / "mini.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in speech_commands_tree.rglob("*.wav"):
            zf.write(path, f"mini/{path.relative_to(speech_commands_tree)}")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    dest = download_archive(archive.as_uri(), tmp_path / "zip", digest)
    assert len(load_label_folders(dest / "mini", ("go", "stop"), "human")) == 4


@pytest.mark.unit
def test_leave_one_engine_out_report_shows_each_word_on_each_held_out_engine():
    from training.evaluation.report import loeo_word_table

    def result(per_class):
        return {"models": {"int8/ai-edge-litert": {"per_class": per_class}}}

    table = loeo_word_table({
        "espeak": result({"go": 0.5, "stop": 1.0, "_unknown_": 0.7, "_silence_": 1.0}),
        "flite": result({"go": 0.25, "stop": 0.875, "_unknown_": 0.6, "_silence_": 1.0}),
    })
    assert table[0] == "| held-out engine | go | stop |"
    assert table[2:] == ["| espeak | 50.0% | 100.0% |", "| flite | 25.0% | 87.5% |"]


@pytest.mark.integration
def test_breakdown_scores_recordings_in_label_folders_per_speaker(speech_commands_tree):
    """Real people's clips (Speech Commands layout) through the node's runtime: a row per
    speaker, or one for all of them, and the other words' folders as `_unknown_`."""
    import hashlib

    from edge_node.model import DEFAULT_MODEL
    from training.evaluation.breakdown import run_breakdown

    rows = [line for line in run_breakdown(DEFAULT_MODEL, speech_commands_tree, None,
                                           "base").splitlines() if line.startswith("| ")]
    speakers = {hashlib.sha1(v.encode()).hexdigest()[:8]: v for v in ("slt", "rms")}
    assert rows[0].startswith("| base | go | down |")
    assert sorted(r.split(" ")[1] for r in rows[1:-1]) == sorted(speakers)
    assert [r.split(" ")[2] for r in rows[1:]] == ["(n=2)" if speakers[r.split(" ")[1]] == "rms"
                                                   else "(n=1)" for r in rows[1:-1]] + ["(n=3)"]
    text = run_breakdown(DEFAULT_MODEL, speech_commands_tree, None, "engine")
    assert "| recorded (n=3) |" in text and "| all (n=3) |" in text
    assert "taken for a command: " in text and " of 1 (" in text
    with pytest.raises(ValueError, match="no scored command clips of espeak"):
        run_breakdown(DEFAULT_MODEL, speech_commands_tree, "espeak", "base")


@pytest.mark.unit
def test_breakdown_counts_each_word_per_voice_group_and_the_confusions():
    from training.evaluation.breakdown import breakdown, format_breakdown

    clips = [Clip(Path(f"{i}.wav"), label, "espeak", f"espeak:v{i % 2}")
             for i, label in enumerate(["go", "go", "no", "no", "go", "no"])]
    predicted = ["go", "go", "go", "no", "_unknown_", "no"]
    voices = {"espeak:v0": {"base": "en-gb-x-rp"}, "espeak:v1": {"base": "en-us"}}
    result = breakdown(clips, predicted, voices, ["go", "no"], lambda v: v["base"])
    # v0 (rp) said go, no, go: right, wrong, wrong; v1 (us) said go, no, no: all right.
    assert result["table"]["en-gb-x-rp"]["go"] == [True, False]
    assert result["table"]["en-us"]["all"] == [True, True, True]
    assert result["table"]["all"]["no"] == [False, True, True]
    assert sorted(result["confusions"]) == [(("go", "_unknown_"), 1), (("no", "go"), 1)]
    text = format_breakdown(result, ["go", "no"], "base")
    assert "| en-gb-x-rp (n=3) | 50% | 0% | 33% |" in text
    assert "| all (n=6) | 67% | 67% | 67% |" in text


@pytest.mark.unit
def test_a_tuned_model_keeps_its_bases_engines_and_licences():
    """The bundled model trained on recorded people (CC BY): a model tuned from it names them
    too, and a later fine-tune of it replays the same engines' data."""
    from edge_node.model import DEFAULT_MODEL, read_manifest
    from training.models.finetune import inherited

    extra = read_manifest(DEFAULT_MODEL).extra
    kept = inherited(extra)
    assert kept == {"engines": extra["engines"], "attribution": extra["attribution"]}
    assert any(line.startswith("Speech Commands") for line in kept["attribution"])
    assert inherited({"parameters": 1, "calibration": {}}) == {}


@pytest.mark.integration
def test_a_model_to_personalise_needs_the_weights_of_exactly_that_file(tmp_path):
    """An installed model whose Keras weights are missing, or are another model's (it was
    replaced without them), is refused with what to do."""
    from edge_node.model import DEFAULT_MODEL, file_sha256, manifest_path
    from training.models.finetune import BaseModel, stamp_path, weights_path

    model = tmp_path / "model.tflite"
    shutil.copyfile(DEFAULT_MODEL, model)
    shutil.copyfile(manifest_path(DEFAULT_MODEL), manifest_path(model))
    with pytest.raises(FileNotFoundError, match="no Keras weights beside"):
        BaseModel.of(model)
    weights_path(model).write_bytes(b"weights")
    stamp_path(model).write_text(json.dumps({"model_sha256": "0" * 64}))
    with pytest.raises(ValueError, match="weights of another model"):
        BaseModel.of(model)
    stamp_path(model).write_text(json.dumps({"model_sha256": file_sha256(model)}))
    assert BaseModel.of(model).keras == weights_path(model)
    assert BaseModel.of(tmp_path).tflite == tmp_path / "model_int8.tflite"  # a run directory
    # the command line says so in one line and exits 2, before any work
    weights_path(model).unlink()
    done = subprocess.run([sys.executable, "-m", "training.cli", "finetune", "--base", str(model),
                           "--user", str(tmp_path), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "no Keras weights beside" in done.stderr and not (tmp_path / "out").exists()


@pytest.mark.unit
def test_fine_tune_weights_give_each_label_its_share_of_the_replayed_data():
    from training.models.finetune import label_balance

    y_train = np.array([0] * 90 + [1] * 10 + [2] * 0)
    weights = label_balance(y_train, np.array([0] * 50 + [1] * 30 + [2] * 20), 3)
    assert weights.mean() == pytest.approx(1.0)
    share = [weights[y_train == k].sum() / weights.sum() for k in (0, 1)]
    assert share == pytest.approx([50 / 80, 30 / 80])
    # label 1 has a quarter of the examples and should have half: weight 2; label 3 is not
    # in the reference and keeps weight 1 (before the weights are normalised)
    kept = label_balance(np.array([0, 0, 1, 3]), np.array([0, 1]), 4)
    assert list(kept / kept[0]) == pytest.approx([1.0, 1.0, 2.0, 1.0])


@pytest.mark.unit
def test_train_command_sets_the_share_of_specaugmented_copies_or_keeps_the_recipes():
    from training.cli import build_parser
    from training.cli.commands import train_settings
    from training.data.augment import AugmentSettings

    def augment(*extra):
        args = build_parser().parse_args(["train", "--out", "run", *extra])
        return train_settings(args).augment

    assert augment().p_specaugment == AugmentSettings().p_specaugment
    assert augment("--specaugment", "0").p_specaugment == 0.0
    with pytest.raises(ValueError, match="p_specaugment"):
        augment("--specaugment", "1.5")


@pytest.mark.unit
def test_rates_and_shares_come_with_their_exact_intervals():
    from training.evaluation.metrics import proportion_interval, rate_interval

    low, high = rate_interval(2, 23 / 60)  # talk.wav: 2 false activations in 23 minutes
    assert 0.6 < low < 0.7 and 18.5 < high < 19.0
    assert rate_interval(0, 1.0) == (0.0, pytest.approx(3.689, abs=1e-3))
    low, high = proportion_interval(301, 331)
    assert low < 301 / 331 < high and 0.86 < low and high < 0.94
    assert proportion_interval(0, 10)[0] == 0.0
    with pytest.raises(ValueError, match="positive duration"):
        rate_interval(1, 0.0)


@pytest.mark.unit
def test_commands_at_a_false_accept_rate_shift_the_scores_both_ways():
    from training.evaluation.metrics import commands_at_false_accept

    labels = ["go", "no", "_unknown_", "_silence_"]
    probs = np.array([[.9, .05, .05, 0], [.6, .3, .1, 0], [.3, .2, .5, 0], [.1, .7, .2, 0],
                      [.1, .1, .8, 0], [.55, .05, .4, 0], [.3, .1, .6, 0], [0, 0, .1, .9]])
    y = np.array([0, 0, 0, 1, 2, 2, 2, 3])
    # argmax: 3 of 4 commands right, 1 of 4 others taken for a command
    assert commands_at_false_accept(probs, y, labels, 0.0) == 0.75  # stricter: still 3
    assert commands_at_false_accept(probs, y, labels, 0.25) == 1.0  # looser: the third "go"
    assert commands_at_false_accept(probs[:4], y[:4], labels, 0.25) is None  # no others
