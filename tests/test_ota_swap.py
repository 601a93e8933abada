"""The agent's model swap between audio blocks loses no detection, even mid-word."""

from __future__ import annotations

import pytest

from edge_node.audio.wav import read_wav_mono16k
from edge_node.detector import Detector, DetectorSettings
from edge_node.isolation import DEFAULT_ISOLATION_MODEL, load_isolation
from edge_node.model import DEFAULT_MODEL, Model
from edge_node.ota.install import REFERENCE_WAV

pytestmark = pytest.mark.unit


def detections(swap_at_s: list[float], isolation: bool = False) -> list[tuple[str, float]]:
    audio = read_wav_mono16k(REFERENCE_WAV)
    # Below the bundled model's calibrated threshold, so every word the swaps fall inside is heard.
    detector = Detector(Model(DEFAULT_MODEL), DetectorSettings(threshold=0.5),
                        isolation=load_isolation(DEFAULT_ISOLATION_MODEL) if isolation else None)
    hop = detector.hop_samples
    found = []
    for start in range(0, audio.size, hop):
        if swap_at_s and start / 16000 >= swap_at_s[0]:
            swap_at_s.pop(0)
            detector.use_model(Model(DEFAULT_MODEL))
        found += [(d.label, d.time_s) for d in detector.push(audio[start:start + hop])]
    return found


@pytest.mark.parametrize("isolation", [False, True], ids=["unchecked", "isolation-checked"])
def test_swapping_in_the_middle_of_words_changes_no_detection(isolation):
    """Also while a detection waits for the isolation check (a swap just after a word)."""
    plain = detections([], isolation)
    # Inside "up" (3.91-4.91 s), "down" (8.38-8.92 s) and "yes" (18.66-19.66 s); and 0.2 s
    # after "up" fired, while it waits for the pause after it.
    swapped = detections([4.3, 5.0, 8.6, 19.0], isolation)
    assert {"up", "down", "yes"} <= {label for label, _ in plain} and len(plain) >= 7
    assert swapped == plain
