"""Recorded people and real talk as training and evaluation material (no TensorFlow)."""

import json

import numpy as np
import pytest

from edge_node.audio.base import AudioSourceError
from edge_node.audio.wav import read_wav_mono16k, write_wav
from tests.support.shared_data import mini_real_speech, mini_speech_commands
from training.data.audio_files import read_audio
from training.data.augment import speech_span
from training.data.dataset import (
    PEOPLE_ENGINE,
    is_held_out,
    load_label_folders,
    load_synthetic,
    speech_commands_noise,
    split_people,
)
from training.data.real_speech import (
    REAL_NOISE_ENGINE,
    load_corpus,
    noise_windows,
    split_corpus,
    talk_windows,
)
from training.data.stream_people import make_people_recording, make_talk_recording
from training.data.vocab import COMMANDS, SILENCE_LABEL, UNKNOWN_LABEL
from training.experiments.folds import clip_folds

pytestmark = pytest.mark.unit


def test_flac_reads_exactly_as_the_same_clip_stored_as_wav(tmp_path):
    soundfile = pytest.importorskip("soundfile")
    rng = np.random.default_rng(3)
    pcm = (rng.standard_normal(8000) * 3000).astype(np.int16)
    soundfile.write(tmp_path / "a.flac", pcm, 16000, subtype="PCM_16")
    write_wav(tmp_path / "a.wav", pcm.astype(np.float32) / 32768.0)
    np.testing.assert_array_equal(read_audio(tmp_path / "a.flac"),
                                  read_wav_mono16k(tmp_path / "a.wav"))


def test_a_corrupt_flac_is_a_clear_error(tmp_path):
    pytest.importorskip("soundfile")
    bad = tmp_path / "bad.flac"
    bad.write_bytes(b"fLaC" + b"\x00" * 50)
    with pytest.raises(AudioSourceError, match="bad.flac"):
        read_audio(bad)


def test_speech_commands_flac_clips_load_with_their_speakers(tmp_path):
    root = mini_speech_commands(tmp_path / "sc", per_word=3)
    clips = load_label_folders(root, COMMANDS, PEOPLE_ENGINE)
    assert {c.path.suffix for c in clips} == {".flac"}
    labels = {c.label for c in clips}
    assert labels == {*COMMANDS, UNKNOWN_LABEL, SILENCE_LABEL}
    spoken = [c for c in clips if c.label != SILENCE_LABEL]
    assert all(c.voice.startswith("human:") and c.voice != "human:human" for c in spoken)
    assert read_audio(spoken[0].path).size == 16000
    assert len(speech_commands_noise(root)) == 1


def test_people_and_folds_split_by_speaker_never_by_clip(tmp_path):
    clips = load_label_folders(mini_speech_commands(tmp_path / "sc", per_word=12), COMMANDS,
                               PEOPLE_ENGINE)
    train, held = split_people(clips)
    assert held and train
    assert not {c.voice for c in train if c.label != SILENCE_LABEL} & {
        c.voice for c in held if c.label != SILENCE_LABEL}
    folds = clip_folds(clips, 5)
    by_voice: dict[str, set[int]] = {}
    for clip, fold in zip(clips, folds, strict=True):
        if clip.label != SILENCE_LABEL:
            by_voice.setdefault(clip.voice, set()).add(int(fold))
    assert all(len(f) == 1 for f in by_voice.values())
    assert set(folds.tolist()) == set(range(5))
    assert is_held_out("human:abc", 0.15) == is_held_out("human:abc", 0.15)


def test_custom_keywords_are_the_labels_of_recorded_people_too(tmp_path, monkeypatch, capfd):
    """`kws-train train --words bed,cat --speech-commands DIR`: the people's bed and cat folders
    become those keywords (trained on and held out alike), their commands `_unknown_`; a loader
    that kept the eight commands would train the keywords on synthetic voices alone."""
    from training.cli import main
    from training.experiments import training_run

    seen = {}

    def train_and_evaluate(material, settings, streams, words):
        seen.update(material=material, settings=settings, words=words)
        return {}, tmp_path / "model.tflite"

    monkeypatch.setattr(training_run, "train_and_evaluate", train_and_evaluate)
    people = mini_speech_commands(tmp_path / "sc", per_word=40,
                                  words=("bed", "cat", "go", "stop", "happy", "_silence_"))
    assert main(["train", "--words", "bed,cat", "--speech-commands", str(people), "--out",
                 str(tmp_path / "run"), "--no-loeo"]) == 0
    assert seen["words"] == ("bed", "cat") and seen["settings"].commands == ("bed", "cat")
    material = seen["material"]
    for clips in (material.clips, material.held_people):
        assert {(c.text, c.label) for c in clips} == {
            ("bed", "bed"), ("cat", "cat"), ("go", UNKNOWN_LABEL), ("stop", UNKNOWN_LABEL),
            ("happy", UNKNOWN_LABEL), (SILENCE_LABEL, SILENCE_LABEL)}
        assert all(c.engine == PEOPLE_ENGINE for c in clips)
    assert "synthetic voices only" not in capfd.readouterr().err


def test_a_keyword_nobody_recorded_is_named_in_a_warning(tmp_path, monkeypatch, capfd):
    """A custom keyword with no folder among the recorded people is learnt from synthetic
    voices alone, which recognises real people far worse: the user is told which one."""
    from training.cli import main
    from training.experiments import training_run

    monkeypatch.setattr(training_run, "train_and_evaluate",
                        lambda material, settings, streams, words: ({}, tmp_path / "m.tflite"))
    people = mini_speech_commands(tmp_path / "sc", per_word=40,
                                  words=("bed", "go", "happy", "_silence_"))
    assert main(["train", "--words", "bed,marvin", "--speech-commands", str(people), "--out",
                 str(tmp_path / "run"), "--no-loeo"]) == 0
    warnings = [line for line in capfd.readouterr().err.splitlines() if " WARNING " in line]
    assert any(w.endswith("has no recordings of marvin: it is learnt from synthetic voices "
                          "only") for w in warnings), warnings


def test_balanced_words_make_each_command_count_as_much_as_the_mean_one(tmp_path):
    from training.data.dataset import Clip
    from training.experiments.training_run import balanced_weights

    clips = ([Clip(tmp_path / f"go{i}.wav", "go", "human", f"human:{i}", weight=3.0)
              for i in range(10)]
             + [Clip(tmp_path / f"no{i}.wav", "no", "human", f"human:{i}", weight=3.0)
                for i in range(30)]
             + [Clip(tmp_path / f"bed{i}.wav", UNKNOWN_LABEL, "human", f"human:{i}", weight=3.0)
                for i in range(5)])
    balanced = balanced_weights(clips, ["go", "no"])
    totals = {label: sum(c.weight for c in balanced if c.label == label)
              for label in ("go", "no", UNKNOWN_LABEL)}
    # 20 clips per command on average, at weight 3: each command counts 60; others keep theirs
    assert totals == pytest.approx({"go": 60.0, "no": 60.0, UNKNOWN_LABEL: 15.0})
    assert balanced_weights(clips[-5:], ["go", "no"]) == clips[-5:]


def test_real_talk_splits_by_speaker_and_gives_unknown_windows(tmp_path):
    corpus = load_corpus(mini_real_speech(tmp_path / "rs"))
    split = split_corpus(corpus)
    assert split.train_talk and split.eval_talk and split.train_noise and split.eval_noise
    assert not {r.speaker for r in split.train_talk} & {r.speaker for r in split.eval_talk}
    count = talk_windows(split.train_talk, tmp_path / "talk", 40, seed=1)
    rows = (tmp_path / "talk" / "clips.csv").read_text().splitlines()
    assert count == 40 and len(rows) == 41
    assert json.loads((tmp_path / "talk" / "dataset.json").read_text())["kind"] == \
        "stream-windows"
    window = read_wav_mono16k(tmp_path / "talk" / rows[1].split(",")[0])
    assert window.size == 16000 and np.abs(window).max() > 0


def test_real_noise_gives_silence_windows_of_training_files_only(tmp_path):
    split = split_corpus(load_corpus(mini_real_speech(tmp_path / "rs")))
    count = noise_windows(split.train_noise, tmp_path / "noise", 30, seed=1)
    clips = load_synthetic(tmp_path / "noise")
    assert count == len(clips) == 30
    assert {c.label for c in clips} == {SILENCE_LABEL}
    assert {c.engine for c in clips} == {REAL_NOISE_ENGINE}
    assert {c.voice for c in clips} <= {f"{REAL_NOISE_ENGINE}:{r.speaker}"
                                        for r in split.train_noise}
    assert not any(c.scored for c in clips), "train-only"
    assert json.loads((tmp_path / "noise" / "dataset.json").read_text())["counts"] == {
        SILENCE_LABEL: 30}
    again = noise_windows(split.train_noise, tmp_path / "again", 30, seed=1)
    assert again == 30 and (tmp_path / "again" / "clips.csv").read_text() == \
        (tmp_path / "noise" / "clips.csv").read_text()
    window = read_wav_mono16k(clips[0].path)
    assert window.size == 16000 and np.abs(window).max() > 0


def test_people_recording_places_held_out_clips_on_their_speech(tmp_path):
    clips = load_label_folders(mini_speech_commands(tmp_path / "sc", per_word=12), COMMANDS,
                               PEOPLE_ENGINE)
    held = [c for c in split_people(clips)[1] if c.label != SILENCE_LABEL]
    split = split_corpus(load_corpus(mini_real_speech(tmp_path / "rs")))
    noises = [read_audio(r.path) for r in split.eval_noise]
    meta = make_people_recording(tmp_path / "people.wav", held, split.eval_talk, noises,
                                 COMMANDS, duration_s=90, seed=2)
    audio = read_wav_mono16k(tmp_path / "people.wav")
    assert abs(audio.size / 16000 - 90) < 0.01
    words = [e for e in meta["events"] if e["kind"] == "word"]
    assert words and {e["voice"] for e in words} <= {c.voice for c in held}
    for event in words:  # each event covers its word (5-30 dB over the noise before it)
        start, end = int(event["start_s"] * 16000), int(event["end_s"] * 16000)
        assert end - start <= 16000
        before = audio[start - 8000:start]
        assert np.sqrt(np.mean(audio[start:end] ** 2)) > np.sqrt(np.mean(before ** 2))
    talk = make_talk_recording(tmp_path / "talk.wav", split.eval_talk, noises, COMMANDS, seed=2)
    assert len(talk["events"]) == len(split.eval_talk)
    assert all(e["label"] == UNKNOWN_LABEL for e in talk["events"])


def test_a_people_recording_names_the_licences_of_what_it_is_made_of(tmp_path):
    """CC BY asks that attribution travel with derived audio: the Speech Commands citation
    when people speak in it, and the licence of every talk and noise file it used."""
    from training.data.make import people_recording
    from training.data.real_speech import licences

    real_speech = mini_real_speech(tmp_path / "rs")
    split = split_corpus(load_corpus(real_speech))
    people_recording(tmp_path / "people.wav", kind="people", real_speech=real_speech,
                     speech_commands=mini_speech_commands(tmp_path / "sc", per_word=12),
                     minutes=1.5, seed=2, talk_share=0.5)
    meta = json.loads((tmp_path / "people.json").read_text())
    used = {e["file"] for e in meta["events"] if e["engine"] == "talk"}
    assert used, "a recording with half its items talk uses some talk file"
    talk = [r for r in split.eval_talk if r.path.name in used]
    noise = [split.eval_noise[s["noise"]] for s in meta["background"]]
    assert meta["attribution"][0].startswith("Speech Commands: P. Warden")
    assert meta["attribution"][1:] == licences(talk + noise)
    people_recording(tmp_path / "talk.wav", kind="talk", real_speech=real_speech,
                     speech_commands=None, minutes=1.0, seed=2)
    only_talk = json.loads((tmp_path / "talk.json").read_text())
    assert not any(line.startswith("Speech Commands") for line in only_talk["attribution"])
    assert set(licences(split.eval_talk)) <= set(only_talk["attribution"])


def test_speech_span_finds_a_word_in_a_padded_second():
    clip = np.zeros(16000, np.float32)
    clip[6000:9000] = np.sin(np.arange(3000) / 5.0)
    start, end = speech_span(clip)
    assert 6000 - 1200 <= start <= 6000 and 9000 <= end <= 9000 + 1200


def test_trimming_lets_a_padded_second_land_anywhere_in_the_window():
    from training.data.augment import Augmenter, AugmentSettings

    clip = np.zeros(16000, np.float32)
    clip[7000:9000] = np.sin(np.arange(2000) / 5.0)
    off = AugmentSettings(p_speed=0, p_reverb=0, p_noise=0, p_bandlimit=0, p_low_level=0,
                          gain_db_range=(0.0, 0.0))

    def onsets(settings):
        rng = np.random.default_rng(0)
        return {int(np.flatnonzero(np.abs(Augmenter([], settings).waveform(
            clip, 16000, rng)) > 0.1)[0]) for _ in range(20)}

    assert len(onsets(off)) == 1  # a one-second clip in a one-second window never moves
    trimmed = onsets(AugmentSettings(**{**off.__dict__, "p_trim": 1.0}))
    assert len(trimmed) > 10 and max(trimmed) - min(trimmed) > 8000
