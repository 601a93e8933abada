"""`edge-node enroll`: prompted recordings through the node's audio source into label folders."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edge_node.audio.wav import read_wav_mono16k
from edge_node.enroll import OTHER_PHRASES, centred_second, speaker_id, speech_start
from tests.support.audio_signals import RATE, noise, write_wav

pytestmark = pytest.mark.integration

COMMANDS = ["go", "down", "up", "stop", "yes", "left", "right", "no"]
WINDOW_S = 2.5


def edge_node(*args):
    return subprocess.run([sys.executable, "-m", "edge_node", *args], capture_output=True,
                          text=True, timeout=120)


def session_audio(speech, texts: list[str | None]) -> np.ndarray:
    """One 2.5 s window per prompt, as a person answers them: the text said 0.6-1.2 s in, over
    quiet room noise; None is a window in which nobody spoke."""
    windows = []
    for i, text in enumerate(texts):
        window = noise(WINDOW_S, -70, seed=i)
        if text is not None:
            word = speech(text, "flite", "slt") * 0.3
            start = int((0.6 + 0.1 * (i % 7)) * RATE)
            window[start : start + word.size] += word[: window.size - start]
        windows.append(window)
    return np.concatenate(windows)


def test_the_kept_second_is_centred_on_the_word():
    x = noise(3.0, -70, seed=3)
    x[int(1.7 * RATE) : int(2.1 * RATE)] += 0.5
    assert abs((speech_start(x) + RATE // 2) / RATE - 1.9) < 0.02  # the word's middle
    assert centred_second(x).size == RATE
    assert speech_start(x[: 2 * RATE]) == RATE  # the word at the very end: clamped
    assert centred_second(x[:800]).size == 800


def test_enrol_prompts_each_command_and_other_phrases_and_writes_label_folders(tmp_path, speech):
    # one take per command; the first "down" window is silent and must be asked for again
    texts = ["go", None, "down", *COMMANDS[2:], OTHER_PHRASES[0], OTHER_PHRASES[1]]
    wav = write_wav(tmp_path / "session.wav", session_audio(speech, texts))
    out = tmp_path / "me"
    done = edge_node("enroll", str(out), "--source", f"wav:{wav}", "--takes", "1",
                     "--others", "2", "--speaker", "alice")
    assert done.returncode == 0, done.stderr
    prompts = done.stdout.splitlines()
    assert prompts[0] == '[1/10] say "go"'
    assert prompts[2] == '[2/10] say "down" (again, louder)'
    assert prompts[-1] == f'[10/10] say "{OTHER_PHRASES[1]}"'
    assert "heard nothing" in done.stderr
    alice = speaker_id("alice")
    for label in [*COMMANDS, "_unknown_"]:
        files = sorted((out / label).glob("*.wav"))
        assert [f.name for f in files] == [f"{alice}_nohash_{i}.wav"
                                           for i in range(2 if label == "_unknown_" else 1)]
        for path in files:
            clip = read_wav_mono16k(path)
            assert clip.size == RATE and 20 * np.log10(np.sqrt(np.mean(clip**2))) > -45
    # the node's own model hears the recorded commands as what was prompted
    classified = edge_node("classify", str(out), "--json")
    labels = {json.loads(line)["file"].split("/")[-2]: json.loads(line)["label"]
              for line in classified.stdout.splitlines()
              if "_unknown_/" not in json.loads(line)["file"]}
    assert sum(labels[word] == word for word in COMMANDS) >= 7, labels


def test_a_second_session_adds_to_the_folders_and_a_short_source_is_an_error(tmp_path, speech):
    out = tmp_path / "me"
    wav = write_wav(tmp_path / "one.wav", session_audio(speech, [*COMMANDS]))
    for _ in range(2):
        done = edge_node("enroll", str(out), "--source", f"wav:{wav}", "--takes", "1",
                         "--others", "0", "--speaker", "bob")
        assert done.returncode == 0, done.stderr
    bob = speaker_id("bob")
    assert sorted(p.name for p in (out / "stop").glob("*.wav")) == [
        f"{bob}_nohash_0.wav", f"{bob}_nohash_1.wav"]
    done = edge_node("enroll", str(out), "--source", f"wav:{wav}", "--takes", "2",
                     "--others", "0", "--speaker", "bob")
    assert done.returncode != 0
    assert "the audio source ended before the enrolment did" in done.stderr
