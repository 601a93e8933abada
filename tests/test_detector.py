"""Streaming detector on real speech (people no bundled model trained on, cut from the bundled
example): one detection per utterance, at the right time."""

import numpy as np
import pytest

from edge_node.audio.wav import WavSource, read_wav_mono16k
from edge_node.config import DEFAULT_EXAMPLE
from edge_node.detector import Detector, DetectorSettings
from edge_node.model import DEFAULT_MODEL, Model
from tests.support.audio_signals import RATE, noise, person_saying

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model():
    return Model(DEFAULT_MODEL)


def run(detector, audio, block=1600):
    found = []
    for start in range(0, audio.size, block):
        found += detector.push(audio[start : start + block])
    return found


def test_one_detection_per_utterance_at_the_right_time(model, command_recording):
    path, events = command_recording
    detector = Detector(model)
    found = []
    with WavSource(path, block_samples=detector.hop_samples) as source:
        for block in source:
            found += detector.push(block)
    assert [d.label for d in found] == [e[0] for e in events]
    for detection, (_, start, end) in zip(found, events, strict=True):
        assert start < detection.time_s <= end + 1.0, (detection, start, end)
        assert detection.confidence >= detector.settings.threshold


def test_replaying_recorded_posteriors_gives_what_a_live_run_at_that_setting_gives(model):
    """A threshold sweep decides again on one run's posteriors (`edge-node detect --sweep`):
    at every threshold it must report exactly what a live run at that threshold reports."""
    audio = read_wav_mono16k(DEFAULT_EXAMPLE)
    recorder = Detector(model, keep_posteriors=True)
    first = run(recorder, audio)
    assert recorder.posteriors is not None and len(recorder.posteriors) == recorder.windows
    for threshold in (0.3, 0.6, 0.8):
        settings = DetectorSettings(threshold=threshold)
        live = run(Detector(model, settings), audio)
        assert recorder.replay(recorder.posteriors, settings) == live
    assert len(run(Detector(model, DetectorSettings(threshold=0.3)), audio)) > len(first)
    with pytest.raises(ValueError, match="hop and gate"):
        recorder.replay(recorder.posteriors, DetectorSettings(gate_dbfs=-50.0))


def test_silence_costs_no_inference_and_detects_nothing(model):
    detector = Detector(model)
    assert run(detector, np.zeros(10 * RATE, np.float32)) == []
    assert detector.inferences == 0 and detector.windows == 100


@pytest.mark.parametrize("dbfs", [-45, -25])
def test_noise_detects_nothing(model, dbfs):
    detector = Detector(model)
    assert run(detector, noise(20, dbfs, seed=5)) == []
    assert detector.inferences > 0


def test_a_word_repeated_slowly_is_detected_each_time_but_not_twice(model):
    word = person_saying("right")
    gap = noise(1.6, -55, 2)
    audio = np.concatenate([gap, word, gap, word, gap])
    found = run(Detector(model), audio, block=512)
    assert [d.label for d in found] == ["right", "right"]


def test_refractory_period_suppresses_a_second_detection(model):
    word = person_saying("right")
    audio = np.concatenate([noise(1.0, -55), word, noise(0.3, -55), word, noise(1.5, -55)])
    found = run(Detector(model, DetectorSettings(refractory_s=3.0)), audio)
    assert [d.label for d in found] == ["right"]


def test_a_command_at_the_sph0645s_level_from_across_a_room_is_heard(model):
    """Speech from 2 m reaches the SPH0645 at about -60 dBFS: the default gate lets it through."""
    word = person_saying("right")
    loudest_hop = max(float(np.sqrt(np.mean(np.square(word[i : i + 1600]))))
                      for i in range(0, word.size, 1600))
    audio = noise(3.5, -85, 1)  # the microphone's own noise runs under the word
    audio[RATE : RATE + word.size] += word * (10 ** (-60 / 20) / loudest_hop)
    assert [d.label for d in run(Detector(model), audio)] == ["right"]
    assert run(Detector(model, DetectorSettings(gate_dbfs=-55.0)), audio) == []


def test_per_command_threshold_can_silence_a_command(model):
    audio = np.concatenate([noise(1.0, -55), person_saying("right"), noise(1.5, -55)])
    settings = DetectorSettings(thresholds={"right": 1.0})
    assert "right" in [d.label for d in run(Detector(model), audio)]
    assert "right" not in [d.label for d in run(Detector(model, settings), audio)]


def test_block_mode_classifies_the_peak_of_each_block(model):
    block = np.concatenate([np.zeros(int(0.8 * RATE), np.float32), person_saying("down")])
    block = np.concatenate([block, np.zeros(int(2.8 * RATE) - block.size, np.float32)])
    audio = np.concatenate([block, np.zeros(block.size, np.float32)])
    # A microphone's noise floor runs under the word and the padding too: digital silence is
    # a signal no microphone makes.
    audio += noise(audio.size / RATE, -55)
    found = run(Detector(model, DetectorSettings(mode="block")), audio)
    assert [d.label for d in found] == ["down"]
    assert found[0].time_s == pytest.approx(2.8)


def test_settings_are_validated():
    with pytest.raises(ValueError, match="mode"):
        DetectorSettings(mode="sometimes")
    with pytest.raises(ValueError, match="threshold for stop"):
        DetectorSettings(thresholds={"stop": 1.5})
    with pytest.raises(ValueError, match="hop_ms"):
        DetectorSettings(hop_ms=5)
