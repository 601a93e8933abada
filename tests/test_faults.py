"""Device faults: the node reports a lost microphone, retries with back-off and resumes."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from edge_node.agent import Agent
from edge_node.audio import AudioSource, AudioSourceError, WavSource
from edge_node.audio.resilient import resilient_blocks
from edge_node.config import load_config
from edge_node.events import Detected, SourceProblem, SourceRestored
from edge_node.model import DEFAULT_MODEL, Model
from tests.support.node_process import NodeProcess, sph0645_raw
from tests.support.vmic_capture import ALSA_CONF

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model_path() -> Path:
    return DEFAULT_MODEL


class UnpluggedAfter(WavSource):
    """A WAV file that fails like a pulled USB microphone after `blocks` blocks."""

    def __init__(self, path: Path, blocks: int, error: Exception) -> None:
        super().__init__(path, block_samples=1600)
        self.left, self.error = blocks, error

    def read(self) -> np.ndarray | None:
        if self.left == 0:
            raise self.error
        self.left -= 1
        return super().read()


def split_recording(path: Path, at_s: float, tmp: Path) -> tuple[Path, Path]:
    rate, data = wavfile.read(path)
    head, tail = tmp / "head.wav", tmp / "tail.wav"
    wavfile.write(head, rate, data[: int(at_s * rate)])
    wavfile.write(tail, rate, data[int(at_s * rate) :])
    return head, tail


def test_agent_rides_out_an_unplugged_microphone(command_recording, model_path, tmp_path):
    """Read error mid-stream, a failed reopen (device still gone), then the device is back."""
    path, events = command_recording
    cut = round(events[0][2] + 1.0, 1)
    head, tail = split_recording(path, cut, tmp_path)
    head_blocks = int(cut * 10)
    opens: list[str] = []

    def open_source() -> AudioSource:
        opens.append("open")
        if len(opens) == 1:
            return UnpluggedAfter(head, head_blocks, OSError(-9981, "Input overflowed"))
        if len(opens) == 2:
            raise AudioSourceError("microphone could not be opened: no default input device")
        return WavSource(tail, block_samples=1600)

    config = load_config(None, {"model": str(model_path), "source": "mic"})
    agent = Agent(config, model=Model(model_path))
    seen: list[object] = []
    for kind in (Detected, SourceProblem, SourceRestored):
        agent.hub.subscribe(kind, seen.append)
    beats = []
    agent.run(open_source, heartbeat=lambda: beats.append(threading.current_thread().name))

    assert len(opens) == 3, "reopened after the read error and after the failed open"
    kinds = [type(e).__name__ for e in seen]
    first_problem = kinds.index("SourceProblem")
    assert kinds[:first_problem] == ["Detected"], "the first word, heard before the fault"
    problems = [e for e in seen if isinstance(e, SourceProblem)]
    assert "Input overflowed; retrying in 0.5 s" in problems[0].message
    assert "no default input device; retrying in 1 s" in problems[1].message
    assert not any(p.fatal for p in problems[:2])
    restored = kinds.index("SourceRestored")
    after = [e for e in seen[restored:] if isinstance(e, Detected)]
    assert len(after) == len(events) - 1, "every word after the outage is heard again"
    offset = head_blocks / 10 - cut
    for event, (_, start, end) in zip(after, events[1:], strict=True):
        assert start + offset < event.detection.time_s <= end + offset + 1.0
    assert len(beats) > 60, "the loop kept feeding the watchdog, also while waiting"


def test_a_word_waiting_for_the_isolation_check_survives_an_outage(command_recording,
                                                                   model_path, tmp_path):
    """The microphone fails 0.2 s after the first word fired, while the isolation check waits
    for the pause after it: the word is still reported, with its time, and so is every other."""
    path, events = command_recording
    config = load_config(None, {"model": str(model_path), "source": "mic"})
    whole = Agent(config, model=Model(model_path))
    assert whole.detector.isolation is not None, "the node runs the bundled check"
    heard: list[Detected] = []
    whole.hub.subscribe(Detected, heard.append)
    whole.run(WavSource(path, block_samples=1600))
    first = heard[0].detection
    cut = round(first.time_s + 0.2, 1)
    head, tail = split_recording(path, cut, tmp_path)
    opens: list[str] = []

    def open_source() -> AudioSource:
        opens.append("open")
        if len(opens) == 1:
            return UnpluggedAfter(head, int(cut * 10), OSError(-9981, "Input overflowed"))
        return WavSource(tail, block_samples=1600)

    agent = Agent(config, model=Model(model_path))
    seen: list[Detected] = []
    agent.hub.subscribe(Detected, seen.append)
    agent.run(open_source)
    assert len(opens) == 2
    assert seen[0].detection == first
    assert [e.detection.label for e in seen] == [e.detection.label for e in heard]


def test_a_file_source_fault_is_not_retried(command_recording, tmp_path):
    stop = threading.Event()
    problems: list[object] = []
    source = UnpluggedAfter(command_recording[0], 3, AudioSourceError("disk read failed"))
    blocks = resilient_blocks(lambda: source, problems.append, stop, retry=False)
    with pytest.raises(AudioSourceError, match="disk read failed"):
        list(blocks)
    assert problems == []


def test_backoff_grows_and_stop_ends_the_wait(tmp_path):
    stop = threading.Event()
    problems: list[SourceProblem] = []

    def publish(event: object) -> None:
        assert isinstance(event, SourceProblem)
        problems.append(event)
        if len(problems) == 4:
            stop.set()

    def missing() -> AudioSource:
        raise AudioSourceError("microphone could not be opened: gone")

    assert list(resilient_blocks(missing, publish, stop, backoff=(0.01, 0.02, 0.05))) == []
    assert [p.message.rsplit(" in ", 1)[1] for p in problems] == ["0.01 s", "0.02 s", "0.05 s",
                                                                  "0.05 s"]


def test_missing_microphone_at_start_is_reported_retried_and_picked_up(
        command_recording, model_path, tmp_path):
    """The real PortAudio path: ALSA's file plugin with its file absent is an unplugged mic."""
    pytest.importorskip("pyaudio")
    conf = tmp_path / "asound.conf"
    conf.write_text(ALSA_CONF)
    vmic = tmp_path / "vmic.raw"
    node = NodeProcess(tmp_path, "--source", "mic", "--model", str(model_path),
                       env={"ALSA_CONFIG_PATH": str(conf), "VMIC_FILE": str(vmic)})
    try:
        node.wait_for(lambda: len([ln for _, ln in node.stderr if "retrying in" in ln]) >= 2)
        assert node.log_has("audio source failed: microphone could not be opened")
        assert any("audio problem: microphone could not be opened" in s
                   for s in node.lines("STATUS="))
        assert node.times("READY=1"), "the node is up (and says why it does not hear)"
        assert node.stdout == []
        sph0645_raw(command_recording[0], tmp_path / "padded.wav", vmic)
        node.wait_for(lambda: len(node.stdout) >= len(command_recording[1]), timeout=60)
        node.wait_for(lambda: node.log_has("audio is back after"), timeout=5)  # own pipe
        assert any("listening (audio is back" in s for s in node.lines("STATUS="))
        code, took = node.terminate()
        assert code == 0 and took < 3
    finally:
        node.close()
