"""Streaming windows cut from a recording: labels from the event list, written as a dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_node.audio.wav import read_wav_mono16k, write_wav
from training.data.dataset import load_synthetic
from training.data.stream_mining import MiningPlan, hard_negatives, label_windows, mine

pytestmark = pytest.mark.unit

SENTENCE = {"label": "_unknown_", "text": "Dinner is ready", "engine": "festival",
            "voice": "festival-s1-0002", "start_s": 2.0, "end_s": 3.5}
STOP = {"label": "stop", "text": "stop!", "engine": "flite", "voice": "flite-s1-0001",
        "start_s": 6.0, "end_s": 6.4}
GO_THEN_WORD = [
    {"label": "go", "text": "go", "engine": "espeak", "voice": "espeak-s1-0003",
     "start_s": 10.0, "end_s": 10.3},
    {"label": "_unknown_", "text": "door", "engine": "espeak", "voice": "espeak-s1-0003",
     "start_s": 10.6, "end_s": 11.0},
]
TWO_VOICES = [
    {"label": "_unknown_", "text": "summer", "engine": "espeak", "voice": "espeak-s1-0004",
     "start_s": 14.0, "end_s": 14.4},
    {"label": "_unknown_", "text": "cheese", "engine": "flite", "voice": "flite-s1-0002",
     "start_s": 14.6, "end_s": 15.0},
]
EVENTS = [SENTENCE, STOP, *GO_THEN_WORD, *TWO_VOICES]


def labels_by_start(events=EVENTS, duration=18.0) -> dict[float, tuple[str, str]]:
    return {round(w.start / 16000, 1): (w.label, w.engine)
            for w in label_windows(events, duration)}


def test_windows_are_labelled_from_the_events():
    got = labels_by_start()
    assert got[0.0] == ("_silence_", "noise")
    assert got[2.5] == ("_unknown_", "festival")  # inside the sentence
    assert got[5.5] == ("stop", "flite") and got[6.0] == ("stop", "flite")  # stop wholly inside


def test_cut_commands_mixed_voices_and_command_plus_word_are_left_out():
    got = labels_by_start()
    assert 6.2 not in got  # the window starts inside "stop": only its tail is heard
    assert 5.3 not in got  # "stop" cut at the window's end
    assert 9.8 not in got  # "go" and "door" in one window: no single honest label
    assert 14.2 not in got  # two voices
    assert got[11.1] == ("_silence_", "noise")


def test_mine_writes_a_dataset_the_trainer_loads(tmp_path):
    rng = np.random.default_rng(0)
    audio = (0.01 * rng.standard_normal(18 * 16000)).astype(np.float32)
    recording = tmp_path / "recording.wav"
    write_wav(recording, audio)
    recording.with_suffix(".json").write_text(json.dumps({"events": EVENTS}))
    counts = mine(recording, tmp_path / "mined", MiningPlan(unknown=5, commands=3, silence=4))
    assert counts == {"_unknown_": 5, "stop": 3, "_silence_": 4}
    clips = load_synthetic(tmp_path / "mined")
    assert len(clips) == 12
    assert {c.engine for c in clips if c.label == "stop"} == {"flite"}
    speakers_of_other_words = {f"{e['engine']}:{e['voice']}" for e in EVENTS
                               if e["label"] == "_unknown_"}
    assert {c.voice for c in clips if c.label == "_unknown_"} <= speakers_of_other_words
    for clip in clips:
        window = read_wav_mono16k(clip.path)
        start = int(clip.path.stem.split("-")[1]) * 16  # named by its start in ms
        assert window.size == 16000
        assert np.max(np.abs(window - audio[start : start + 16000])) < 1e-3


def test_hard_negatives_are_the_unknown_windows_behind_false_detections():
    windows = label_windows(EVENTS, 18.0)
    detections = [
        {"label": "stop", "confidence": 0.9, "time_s": 6.8},  # right: not a negative
        {"label": "up", "confidence": 0.7, "time_s": 3.4},  # during the sentence: false
        {"label": "go", "confidence": 0.7, "time_s": 6.9},  # during "stop": wrong command
    ]
    hard = hard_negatives(windows, detections, EVENTS)
    starts = [round(w.start / 16000, 1) for w in hard]
    assert starts == [2.0, 2.1, 2.2, 2.3, 2.4]  # the five 1 s windows ending by 3.4 s
    assert {w.label for w in hard} == {"_unknown_"} and {w.engine for w in hard} == {"festival"}


def test_mining_recording_is_spoken_by_the_datasets_own_engines():
    """A dataset without espeak-ng gets no espeak-ng voices through its mining windows (a model
    held out from an engine would otherwise hear it); train-only engines have no events."""
    from training.data.make import mining_engines

    recipe = {"engines": ["espeak", "flite", "festival", "festival-accent"]}
    assert mining_engines(recipe) == ("espeak", "flite", "festival")
    assert mining_engines({"engines": ["flite", "festival", "festival-accent"]}) == (
        "flite", "festival")
    assert mining_engines({"engines": ["piper"]}) == ("piper",)
    assert mining_engines({}) == ("espeak", "flite", "festival")  # a dataset.json without the field
