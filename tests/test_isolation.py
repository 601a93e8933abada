"""The isolation check: a command said on its own is reported once the pause after it is
heard; the same word inside talk is held back. Real models (the bundled classifier and
isolation check), real speech (people no bundled model trained on, from the bundled example)."""

import json
import logging
import shutil

import numpy as np
import pytest

from edge_node.audio.wav import read_wav_mono16k
from edge_node.config import DEFAULT_EXAMPLE, load_config
from edge_node.detector import Detector, DetectorSettings
from edge_node.isolation import (
    DEFAULT_ISOLATION_MODEL,
    ISOLATION_LABELS,
    IsolationCheck,
    load_isolation,
)
from edge_node.model import DEFAULT_MODEL, Model, ModelError, manifest_path
from tests.support.audio_signals import RATE, noise, person_saying

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model():
    return Model(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def isolation(model):
    check = load_isolation(DEFAULT_ISOLATION_MODEL, model.runtime)
    assert check is not None
    return check


def run(detector, audio, block=1600):
    """Detections, each with the stream time at which `push` (or `finish`) returned it."""
    found = []
    for start in range(0, audio.size, block):
        for detection in detector.push(audio[start:start + block]):
            found.append((detection, detector.time_s))
    return found + [(detection, detector.time_s) for detection in detector.finish()]


def test_the_bundled_check_names_its_window_threshold_and_sources(isolation):
    manifest = isolation.model.manifest
    assert tuple(manifest.labels) == ISOLATION_LABELS
    assert 0.0 < isolation.threshold < 1.0
    assert isolation.after_samples == manifest.extra["isolation"]["after_ms"] * RATE // 1000
    assert isolation.clip_samples == (manifest.extra["isolation"]["before_ms"]
                                      + manifest.extra["isolation"]["after_ms"]) * RATE // 1000
    assert any("Speech Commands" in line for line in manifest.extra["attribution"])
    made = manifest.extra["isolation_training"]
    assert made["validation"]["alone_kept"] >= made["keep_alone"] >= 0.9
    assert made["validation"]["threshold"] == isolation.threshold


def test_a_word_alone_is_reported_and_the_same_word_between_other_words_is_not(model,
                                                                            isolation):
    """The same recorded "right": said alone over room noise it is a command; said between
    other people's words, one after another, the classifier still fires on it but the check
    holds it back, while the first word of the run (a pause before it) is reported."""
    def detections(audio, check_threshold=None):
        settings = DetectorSettings(isolation_threshold=check_threshold)
        return [d.label for d, _ in run(Detector(model, settings, isolation=isolation), audio)]

    room = noise(2.0, -60, seed=3)
    word = person_saying("right")
    run_of_words = np.concatenate([room, person_saying("up", 1), person_saying("_unknown_"), word,
                                   person_saying("up", 2), person_saying("down", 1), room])
    assert detections(np.concatenate([room, word, room])) == ["right"]
    assert "right" in detections(run_of_words, check_threshold=0.0)
    assert detections(run_of_words)[0] == "up" and "right" not in detections(run_of_words)


def test_real_talk_fires_less_and_real_people_alone_are_all_heard(model, isolation):
    """Held-out real talk (../shared/real_speech: readings and conversations no model trained
    on) at a low threshold, where the classifier fires on words inside sentences: the check
    holds most of them back. Held-out people's commands (../shared/speech_commands) said alone
    over noise: the check lets through those the classifier finds."""
    from tests.support.shared_data import shared_folder
    from training.data.audio_files import read_audio
    from training.data.augment import speech_span
    from training.data.dataset import PEOPLE_ENGINE, load_label_folders, split_people
    from training.data.real_speech import load_corpus, split_corpus

    def labels(audio, check_threshold=None):
        settings = DetectorSettings(threshold=0.3, isolation_threshold=check_threshold)
        return [d.label for d, _ in run(Detector(model, settings, isolation=isolation), audio)]

    talk = split_corpus(load_corpus(shared_folder("real_speech"))).eval_talk[:40]
    reading = np.concatenate([part for k, r in enumerate(talk)
                              for part in (read_audio(r.path), noise(0.5, -55, seed=k))])
    unchecked, checked = len(labels(reading, 0.0)), len(labels(reading))
    assert unchecked >= 5 and checked <= 0.4 * unchecked, (unchecked, checked)

    people = load_label_folders(shared_folder("speech_commands"), model.manifest.commands,
                                PEOPLE_ENGINE)
    said = heard = 0
    for k, clip in enumerate([c for c in split_people(people)[1]
                              if c.label in ("right", "stop", "yes", "left")][:40]):
        audio = read_audio(clip.path)
        low, high = speech_span(audio)
        alone = np.concatenate([noise(2.0, -55, seed=k), audio[low:high],
                                noise(2.0, -55, seed=k + 1)])
        if clip.label in labels(alone, 0.0):
            said += 1
            heard += clip.label in labels(alone)
    assert said >= 30 and heard >= 0.95 * said, (said, heard)


def test_a_detection_waits_for_the_pause_after_its_word_and_keeps_its_time(model, isolation):
    audio = read_wav_mono16k(DEFAULT_EXAMPLE)
    unchecked = run(Detector(model, DetectorSettings(isolation_threshold=0.0),
                             isolation=isolation), audio)
    checked = run(Detector(model, isolation=isolation), audio)
    assert checked, "the example's commands are said on their own"
    times = {d.time_s: returned for d, returned in unchecked}
    wait = isolation.after_samples / RATE
    for detection, returned in checked:
        assert detection.time_s in times, "the check only holds back, it never adds"
        assert times[detection.time_s] <= detection.time_s + 0.1 + 1e-9
        assert detection.time_s + wait <= returned <= detection.time_s + wait + 0.1 + 1e-9


def test_a_word_waiting_for_the_pause_is_decided_when_the_stream_goes_unheard_or_ends(
        model, isolation):
    """Listening switched off, the microphone lost or the file ended 0.2 s after a word fired,
    inside the check's wait: the word is decided on what was heard, silence after, not lost."""
    audio = read_wav_mono16k(DEFAULT_EXAMPLE)
    first = run(Detector(model, isolation=isolation), audio)[0][0]
    head = audio[:round((first.time_s + 0.2) * RATE / 1600) * 1600]
    for end in ("skip", "finish", "nothing"):
        detector = Detector(model, isolation=isolation)
        assert [d for start in range(0, head.size, 1600)
                for d in detector.push(head[start:start + 1600])] == []
        found = (detector.skip(RATE) if end == "skip" else
                 detector.finish() if end == "finish" else [])
        assert found == ([] if end == "nothing" else [first]), end
    strict = Detector(model, DetectorSettings(isolation_threshold=1.0), isolation=isolation)
    strict.push(head)
    assert strict.skip(RATE) == [] and strict.vetoed == 1, "the check still holds talk back"


def test_threshold_zero_turns_the_check_off_and_one_holds_everything_back(model, isolation):
    audio = read_wav_mono16k(DEFAULT_EXAMPLE)
    plain = [d for d, _ in run(Detector(model), audio)]
    off = Detector(model, DetectorSettings(isolation_threshold=0.0), isolation=isolation)
    assert [d for d, _ in run(off, audio)] == plain
    strict = Detector(model, DetectorSettings(isolation_threshold=1.0), isolation=isolation)
    assert run(strict, audio) == [] and strict.vetoed == len(plain) > 0


def test_replay_with_recorded_isolation_scores_gives_what_a_live_run_gives(model, isolation):
    audio = read_wav_mono16k(DEFAULT_EXAMPLE)
    recorder = Detector(model, keep_posteriors=True, isolation=isolation)
    run(recorder, audio)
    assert recorder.isolation_scores is not None
    assert len(recorder.isolation_scores) == len(recorder.posteriors or []) == recorder.windows
    for threshold, isolation_threshold in ((0.4, None), (0.6, 0.9), (0.8, 0.0)):
        settings = DetectorSettings(threshold=threshold, isolation_threshold=isolation_threshold)
        live = [d for d, _ in run(Detector(model, settings, isolation=isolation), audio)]
        assert recorder.replay(recorder.posteriors, settings, recorder.isolation_scores) == live
    with pytest.raises(ValueError, match="isolation score for every hop"):
        recorder.replay(recorder.posteriors, DetectorSettings(threshold=0.5))


def test_an_unusable_isolation_model_leaves_the_check_off_with_a_clear_error(tmp_path, caplog):
    corrupt = tmp_path / "isolation.tflite"
    shutil.copy(DEFAULT_ISOLATION_MODEL, corrupt)
    shutil.copy(manifest_path(DEFAULT_ISOLATION_MODEL), manifest_path(corrupt))
    corrupt.write_bytes(b"not a model")
    with caplog.at_level(logging.ERROR):
        assert load_isolation(corrupt) is None
    assert "isolation check off" in caplog.text
    assert load_isolation(tmp_path / "missing.tflite") is None
    with pytest.raises(ModelError, match="not an isolation model"):
        IsolationCheck(Model(DEFAULT_MODEL))
    shutil.copy(DEFAULT_ISOLATION_MODEL, corrupt)
    manifest = json.loads(manifest_path(DEFAULT_ISOLATION_MODEL).read_text())
    del manifest["isolation"]
    manifest_path(corrupt).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="after_ms"):
        IsolationCheck(Model(corrupt))


def test_node_yaml_chooses_the_isolation_model_or_none(tmp_path):
    assert load_config(None).isolation_model == DEFAULT_ISOLATION_MODEL
    path = tmp_path / "node.yaml"
    path.write_text("isolation_model: null\ndetector: {isolation_threshold: 0.3}\n")
    config = load_config(path)
    assert config.isolation_model is None and config.detector.isolation_threshold == 0.3
    path.write_text("detector: {isolation_threshold: 1.5}\n")
    with pytest.raises(ValueError, match="isolation_threshold"):
        load_config(path)


def test_doctor_says_which_check_is_in_force_and_how_long_a_detection_waits(tmp_path):
    from edge_node.doctor import check_isolation

    bundled = check_isolation(DEFAULT_ISOLATION_MODEL)
    assert bundled.ok is True and "its manifest" in bundled.detail
    assert "waits 500 ms" in bundled.detail
    assert "0.20 (set in node.yaml" in check_isolation(
        DEFAULT_ISOLATION_MODEL, DetectorSettings(isolation_threshold=0.2)).detail
    assert check_isolation(None).ok is None
    missing = check_isolation(tmp_path / "missing.tflite")
    assert missing.ok is False and "runs without the check" in missing.detail
