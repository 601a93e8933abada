"""Google's speech_embedding network as a feature frontend (the one openWakeWord builds on).

A classifier trained only on synthetic voices learns the voices' quirks; openWakeWord's answer
is to classify *embeddings* from a network pre-trained by Google on a large amount of real
speech, so what the small head learns is closer to "which word" than "which synthesiser". Both
TensorFlow Lite graphs (log-mel, 32 bands, 10 ms hop; embedding, 76 frames -> 96 values) come
from the `pyopen-wakeword` package (Apache-2.0, Home Assistant's voice team) and run in this
project's own TFLite runtime shim.

Mel frame k of a stream covers samples [160 k, 160 k + 640); an embedding is computed for every
frame whose end falls on a multiple of the embedding step, so a window's embeddings end at the
window's end, and streaming (`EmbeddingStream`) gives the numbers `window_features` gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_node.audio.base import SAMPLE_RATE
from edge_node.runtime import RuntimeUnavailableError, load_interpreter_class

MEL_HOP = 160
MEL_CONTEXT = 480
"""Samples before a block of new audio that its first mel frame also looks at."""
N_MELS = 32
EMBEDDING_FRAMES = 76
"""Mel frames (775 ms) behind one embedding."""
EMBEDDING_SIZE = 96
PCM_SCALE = 32768.0
"""The graphs take int16-valued samples; the node's audio is float in [-1, 1]."""


class EmbeddingUnavailableError(RuntimeError):
    """The speech-embedding graphs or a TFLite runtime to run them are missing."""


def graph_dir() -> Path:
    """Where the installed `pyopen-wakeword` keeps its graphs."""
    try:
        import pyopen_wakeword
    except ImportError as exc:
        raise EmbeddingUnavailableError(
            "the speech-embedding feature profile needs the 'pyopen-wakeword' package "
            f"(pip install pyopen-wakeword): {exc}") from exc
    return Path(pyopen_wakeword.__file__).parent / "models"


def embedding_count(clip_samples: int, step_samples: int) -> int:
    """Embeddings a window yields: its first block has no context, so it is not used."""
    frames = (clip_samples // step_samples - 1) * (step_samples // MEL_HOP)
    if frames < EMBEDDING_FRAMES:
        return 0
    return 1 + (frames - EMBEDDING_FRAMES) * MEL_HOP // step_samples


@dataclass(frozen=True)
class EmbeddingParams:
    """Parameters of the speech-embedding profile; stored in each model's manifest."""

    step_ms: int = 50
    """Time between the window's embeddings; the streaming hop must be a multiple of it."""
    clip_ms: int = 1000
    """Length of the audio window the model sees; a multiple of `step_ms`."""

    def __post_init__(self) -> None:
        if self.step_ms < 30 or self.step_ms % 10 or self.clip_ms % self.step_ms:
            raise ValueError(
                "speech-embedding step_ms must be a multiple of 10, at least 30, dividing clip_ms")
        if self.count < 1:
            raise ValueError("speech-embedding clip_ms is too short for one embedding")

    @property
    def step_samples(self) -> int:
        return SAMPLE_RATE * self.step_ms // 1000

    @property
    def clip_samples(self) -> int:
        return SAMPLE_RATE * self.clip_ms // 1000

    @property
    def count(self) -> int:
        """Embeddings per window."""
        return embedding_count(self.clip_samples, self.step_samples)


class SpeechEmbedding:
    """The two graphs, each with one interpreter reused across calls."""

    def __init__(self, runtime: str | None = None) -> None:
        folder = graph_dir()
        try:
            _, interpreter_class = load_interpreter_class(runtime)
        except RuntimeUnavailableError as exc:
            raise EmbeddingUnavailableError(str(exc)) from exc
        self._mel = interpreter_class(model_path=str(folder / "melspectrogram.tflite"),
                                      num_threads=1)
        self._embedding = interpreter_class(model_path=str(folder / "embedding_model.tflite"),
                                            num_threads=1)
        self._mel_input = -1
        self._batch = -1
        # Tensor indices survive resizing; looked up once, not on every hop.
        self._mel_in = self._mel.get_input_details()[0]["index"]
        self._mel_out = self._mel.get_output_details()[0]["index"]
        self._embedding_in = self._embedding.get_input_details()[0]["index"]
        self._embedding_out = self._embedding.get_output_details()[0]["index"]

    def mel_block(self, audio: np.ndarray) -> np.ndarray:
        """(step / 160, 32) log-mel frames of one block: MEL_CONTEXT samples, then a step.

        The mel graph floors its output 80 dB below the loudest value of its whole input, so
        frames are only reproducible if every caller cuts the same blocks: this grid is it.
        """
        if audio.size != self._mel_input:
            self._mel.resize_tensor_input(0, [1, audio.size], strict=True)
            self._mel.allocate_tensors()
            self._mel_input = audio.size
        x = (np.asarray(audio, dtype=np.float32) * np.float32(PCM_SCALE))[None]
        self._mel.set_tensor(self._mel_in, x)
        self._mel.invoke()
        out = self._mel.get_tensor(self._mel_out)
        frames = (audio.size - MEL_CONTEXT) // MEL_HOP
        # The embedding graph was trained on this rescaling of the mel graph's output.
        return (out.reshape(-1, N_MELS)[:frames] / 10.0 + 2.0).astype(np.float32)

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """(b, 96) embeddings of (b, 76, 32) mel windows."""
        batch = windows.shape[0]
        if batch != self._batch:
            self._embedding.resize_tensor_input(
                0, [batch, EMBEDDING_FRAMES, N_MELS, 1], strict=True)
            self._embedding.allocate_tensors()
            self._batch = batch
        x = np.ascontiguousarray(windows, dtype=np.float32)[..., None]
        self._embedding.set_tensor(self._embedding_in, x)
        self._embedding.invoke()
        out = self._embedding.get_tensor(self._embedding_out)
        return out.reshape(batch, EMBEDDING_SIZE).astype(np.float32)

    def window_features(self, audio: np.ndarray, step_samples: int) -> np.ndarray:
        """(count, 96): the embeddings ending at the window's end and every step before it."""
        count = embedding_count(audio.size, step_samples)
        frames = np.concatenate([
            self.mel_block(audio[start - MEL_CONTEXT : start + step_samples])
            for start in range(step_samples, audio.size - step_samples + 1, step_samples)])
        per_step = step_samples // MEL_HOP
        ends = [len(frames) - i * per_step for i in reversed(range(count))]
        return self.embed(np.stack([frames[e - EMBEDDING_FRAMES : e] for e in ends]))


class EmbeddingStream:
    """Incremental embeddings of a live stream: per step of new audio, one mel block and one
    embedding; the last `count` embeddings are the window's features."""

    def __init__(self, frontend: SpeechEmbedding, step_samples: int, count: int) -> None:
        self.frontend = frontend
        self.step_samples = step_samples
        self._audio = np.zeros(0, dtype=np.float32)
        self._frames = np.zeros((0, N_MELS), dtype=np.float32)
        self._embeddings = np.zeros((count, EMBEDDING_SIZE), dtype=np.float32)
        self._started = False

    def push(self, block: np.ndarray) -> None:
        self._audio = np.concatenate([self._audio, np.asarray(block, dtype=np.float32)])
        if not self._started:
            # The stream's first step has no context before it, as a window's first step.
            if self._audio.size < self.step_samples:
                return
            self._audio = self._audio[self.step_samples - MEL_CONTEXT :]
            self._started = True
        span = MEL_CONTEXT + self.step_samples
        while self._audio.size >= span:
            new = self.frontend.mel_block(self._audio[:span])
            self._audio = self._audio[self.step_samples :]
            self._frames = np.concatenate([self._frames, new])[-EMBEDDING_FRAMES:]
            if len(self._frames) == EMBEDDING_FRAMES:
                fresh = self.frontend.embed(self._frames[None])
                self._embeddings = np.concatenate([self._embeddings[1:], fresh])

    def features(self) -> np.ndarray:
        return self._embeddings
