"""Audio sources that all yield 16 kHz mono float32 blocks in [-1, 1]."""

from edge_node.audio.base import (
    DEFAULT_BLOCK_SAMPLES,
    SAMPLE_RATE,
    AudioSource,
    AudioSourceError,
    ConvertingSource,
    PcmConverter,
    Reblocker,
    choose_channel,
)
from edge_node.audio.factory import open_source
from edge_node.audio.mic import MicSource, list_input_devices, record
from edge_node.audio.resample import StreamingResampler
from edge_node.audio.settings import AudioSettings
from edge_node.audio.stdin import StdinSource
from edge_node.audio.wav import WavSource, read_wav_mono16k, write_wav

__all__ = [
    "DEFAULT_BLOCK_SAMPLES",
    "SAMPLE_RATE",
    "AudioSettings",
    "AudioSource",
    "AudioSourceError",
    "ConvertingSource",
    "MicSource",
    "PcmConverter",
    "Reblocker",
    "StdinSource",
    "StreamingResampler",
    "WavSource",
    "choose_channel",
    "list_input_devices",
    "open_source",
    "read_wav_mono16k",
    "record",
    "write_wav",
]
